import { describe, expect, it } from "vitest";
import { headerObject } from "./request.ts";

describe("headerObject", () => {
  it("keys by lower-cased name and joins repeats as node:http does", () => {
    const h = headerObject([
      "Host",
      "a.test",
      "HOST",
      "b.test",
      "X-Tag",
      "1",
      "x-tag",
      "2",
      "Cookie",
      "a=1",
      "cookie",
      "b=2",
      "Set-Cookie",
      "s=1",
      "set-cookie",
      "s=2",
      "Content-Type",
      "text/plain",
      "content-type",
      "text/html",
    ]);
    expect(h).toEqual({
      host: "a.test",
      "x-tag": "1, 2",
      cookie: "a=1; b=2",
      "set-cookie": ["s=1", "s=2"],
      "content-type": "text/plain",
    });
  });
});
