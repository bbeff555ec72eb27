// A Secret volume as the kubelet writes it, for tests of files that rotate with their Secret.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A Secret volume as the kubelet writes it: tls.crt → ..data/tls.crt, ..data → ..<version>/. */
export class SecretVolume {
  readonly dir = mkdtempSync(join(tmpdir(), "tether-demo-secret-"));
  private version = 0;

  constructor(files: Record<string, string>) {
    this.update(files);
    for (const name of Object.keys(files)) symlinkSync(`..data/${name}`, join(this.dir, name));
  }

  /** The kubelet's atomic update: a new version directory, ..data swapped to it, the old one removed. */
  update(files: Record<string, string>): void {
    const previous = this.version === 0 ? undefined : `..v${this.version}`;
    const next = `..v${++this.version}`;
    mkdirSync(join(this.dir, next));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(this.dir, next, name), text);
    symlinkSync(next, join(this.dir, "..data_tmp"));
    renameSync(join(this.dir, "..data_tmp"), join(this.dir, "..data"));
    if (previous !== undefined) rmSync(join(this.dir, previous), { recursive: true });
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
