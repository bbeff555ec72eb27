// The token file as call metadata: read as it is now (a rotation is seen at the next call), and a
// file that cannot be a header value fails with an error naming the flag and the file.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { bearerMetadata } from "./token.ts";

describe("bearerMetadata", () => {
  it("reads the file at each call, trimmed; refuses a missing, empty or multi-word file", () => {
    const file = join(mkdtempSync(join(tmpdir(), "tether-token-")), "token");
    writeFileSync(file, "aaa.bbb.ccc\n");
    expect(bearerMetadata(file)).toEqual({ authorization: "Bearer aaa.bbb.ccc" });
    writeFileSync(file, "ddd.eee.fff");
    expect(bearerMetadata(file)).toEqual({ authorization: "Bearer ddd.eee.fff" });
    writeFileSync(file, "  \n");
    expect(() => bearerMetadata(file)).toThrow(`--xds-token-file ${file}: the file is empty`);
    writeFileSync(file, "one\ntwo");
    expect(() => bearerMetadata(file)).toThrow(/not a token/);
    expect(() => bearerMetadata(`${file}.missing`)).toThrow(/--xds-token-file .*ENOENT/);
  });
});
