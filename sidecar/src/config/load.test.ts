import { describe, expect, it } from "vitest";
import { TetherError } from "../errors.ts";
import { parseConfigText, readSettled } from "./load.ts";

/** A file whose successive reads return `texts` (the last one from then on), and the pauses asked for. */
function fakeFile(texts: readonly string[]): {
  read: () => Promise<string>;
  sleep: (ms: number) => Promise<void>;
  reads: () => number;
  pauses: number[];
} {
  let n = 0;
  const pauses: number[] = [];
  return {
    read: () => Promise.resolve(texts[Math.min(n++, texts.length - 1)] ?? ""),
    sleep: (ms) => {
      pauses.push(ms);
      return Promise.resolve();
    },
    reads: () => n,
    pauses,
  };
}

describe("readSettled", () => {
  it("returns the text once two reads in a row agree", async () => {
    // Caught mid-write: truncated, half written, then complete.
    const f = fakeFile(["", "admin:", "admin: {}\n", "admin: {}\n"]);
    expect(await readSettled("envoy.yaml", { read: f.read, sleep: f.sleep, intervalMs: 7 })).toBe(
      "admin: {}\n",
    );
    expect(f.reads()).toBe(4);
    expect(f.pauses).toEqual([7, 7, 7]);
  });

  it("gives up after a bounded number of reads of a file that keeps changing", async () => {
    let n = 0;
    const read = (): Promise<string> => Promise.resolve(`# version ${n++}`);
    const err = await readSettled("/etc/envoy.yaml", {
      read,
      sleep: () => Promise.resolve(),
      attempts: 3,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TetherError);
    expect((err as TetherError).code).toBe("TETHER_ERR_CONFIG_READ");
    expect((err as TetherError).message).toContain("/etc/envoy.yaml kept changing");
    expect(n).toBe(4);
  });

  it("reports an unreadable file with its path", async () => {
    const read = (): Promise<string> => Promise.reject(new Error("ENOENT: no such file"));
    await expect(readSettled("/missing.yaml", { read })).rejects.toThrow("cannot read /missing.yaml: ENOENT");
  });
});

describe("parseConfigText", () => {
  it("refuses an empty, blank or comments-only document, naming the source", () => {
    for (const text of ["", " \n\t\n", "# nothing here\n"]) {
      expect(() => parseConfigText(text, "/etc/envoy.yaml")).toThrow(
        expect.objectContaining({ code: "TETHER_ERR_CONFIG_EMPTY", message: "/etc/envoy.yaml is empty" }),
      );
    }
  });
});
