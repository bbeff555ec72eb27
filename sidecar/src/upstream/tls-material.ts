// TLS files an UpstreamTlsContext names (trusted_ca, tls_certificates' chain and key), kept current
// while they rotate: Kubernetes updates a Secret volume by swapping its `..data` symlink, so the
// files' directories are watched (with a slow poll as a backstop) and the files re-read when they
// change. New material is checked before use — every PEM parses, the key belongs to the certificate —
// and then new connections use it at once; connections already open keep the material they were made
// with. Bad material is refused with an error naming the file, and the previous material stays.
import { watch, type FSWatcher } from "node:fs";
import path from "node:path";
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { ConnectionOptions } from "node:tls";
import { TetherError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { readSettled } from "../config/load.ts";
import { timerDelay } from "../timers.ts";

/** One file the context reads, with the config path that names it in errors. */
export interface TlsFile {
  readonly role: "trusted_ca" | "certificate_chain" | "private_key";
  readonly file: string;
  readonly configPath: string;
}

export type TlsFileTexts = Readonly<Partial<Record<TlsFile["role"], string>>>;

function invalid(message: string): TetherError {
  return new TetherError("TETHER_ERR_TLS_MATERIAL", message, [message]);
}

function certificatesIn(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * Checks material as Envoy does when it loads a context: each certificate file holds at least one
 * parsable certificate, the key parses, and the key is the certificate's. Throws naming the file.
 */
export function checkTlsMaterial(texts: TlsFileTexts, files: readonly TlsFile[]): void {
  const name = (role: TlsFile["role"]): string => {
    const f = files.find((x) => x.role === role);
    return f === undefined ? role : `${f.configPath} (${f.file})`;
  };
  const parsed = (role: "trusted_ca" | "certificate_chain"): X509Certificate[] => {
    const text = texts[role];
    if (text === undefined) return [];
    const pems = certificatesIn(text);
    if (pems.length === 0) throw invalid(`${name(role)}: no PEM certificate in the file`);
    try {
      return pems.map((p) => new X509Certificate(p));
    } catch (err) {
      throw invalid(`${name(role)}: not a valid certificate: ${(err as Error).message}`);
    }
  };
  parsed("trusted_ca");
  const chain = parsed("certificate_chain");
  if (texts.private_key === undefined) return;
  let key;
  try {
    key = createPrivateKey(texts.private_key);
  } catch (err) {
    throw invalid(`${name("private_key")}: not a valid private key: ${(err as Error).message}`);
  }
  const leaf = chain[0];
  if (leaf !== undefined && !leaf.checkPrivateKey(key)) {
    throw invalid(`${name("private_key")}: the key does not match ${name("certificate_chain")}`);
  }
}

export interface TlsMaterialOptions {
  readonly debounceMs?: number;
  readonly pollMs?: number;
}

/** The current connect options of one TLS context; `options` changes only to checked material. */
export class TlsMaterial {
  private current: ConnectionOptions;
  private texts: TlsFileTexts;
  private readonly files: readonly TlsFile[];
  private readonly debounceMs: number;
  private readonly pollMs: number;
  private watchers: FSWatcher[] = [];
  private debounce: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private log: Logger | undefined;
  /** Rotations applied and refused, for logs and tests. */
  readonly counts = { rotated: 0, rejected: 0 };

  constructor(
    base: ConnectionOptions,
    files: readonly TlsFile[],
    texts: TlsFileTexts,
    options: TlsMaterialOptions = {},
  ) {
    checkTlsMaterial(texts, files);
    this.files = files;
    this.texts = texts;
    this.current = TlsMaterial.build(base, texts);
    this.debounceMs = options.debounceMs ?? 100;
    this.pollMs = options.pollMs ?? 10_000;
  }

  private static build(base: ConnectionOptions, texts: TlsFileTexts): ConnectionOptions {
    const out: ConnectionOptions = { ...base };
    if (texts.trusted_ca !== undefined) out.ca = texts.trusted_ca;
    if (texts.certificate_chain !== undefined) out.cert = texts.certificate_chain;
    if (texts.private_key !== undefined) out.key = texts.private_key;
    return out;
  }

  /** What a new connection uses. */
  get options(): ConnectionOptions {
    return this.current;
  }

  /** Starts following the files (no-op without files, i.e. inline material). */
  watch(log: Logger): void {
    if (this.files.length === 0 || this.watchers.length > 0) return;
    this.log = log;
    for (const dir of new Set(this.files.map((f) => path.dirname(path.resolve(f.file))))) {
      try {
        const w = watch(dir, { persistent: false }, () => {
          this.trigger();
        });
        w.on("error", () => undefined);
        this.watchers.push(w);
      } catch {
        // The directory may be gone for a moment; the poll still reads the files.
      }
    }
    this.poll = setInterval(() => {
      this.trigger();
    }, timerDelay(this.pollMs));
    this.poll.unref();
  }

  unwatch(): void {
    clearTimeout(this.debounce);
    clearInterval(this.poll);
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  private trigger(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.running = this.running.then(async () => {
        await this.reload();
      });
    }, timerDelay(this.debounceMs));
    this.debounce.unref();
  }

  /** Re-reads the files; applies changed, valid material. Resolves true when it rotated. */
  async reload(): Promise<boolean> {
    const next: Partial<Record<TlsFile["role"], string>> = {};
    try {
      for (const f of this.files) next[f.role] = await readSettled(f.file);
    } catch {
      return false; // mid-swap or briefly absent: the next event or poll reads again
    }
    if (this.files.every((f) => next[f.role] === this.texts[f.role])) return false;
    try {
      checkTlsMaterial(next, this.files);
    } catch (err) {
      this.counts.rejected++;
      this.log?.error(
        { code: (err as TetherError).code, err: (err as Error).message },
        "new TLS material refused; new connections keep the previous material",
      );
      // Not remembered: the same files are checked again at the next event or poll.
      return false;
    }
    this.texts = next;
    this.current = TlsMaterial.build(this.current, next);
    this.counts.rotated++;
    this.log?.info({ files: this.files.map((f) => f.file) }, "TLS material rotated; new connections use it");
    return true;
  }
}
