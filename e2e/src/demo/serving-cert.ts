// The demo policy server's TLS certificate and key, read from files and followed while they rotate.
// Kubernetes updates a Secret volume by writing the new files into a fresh hidden directory and then
// swapping the volume's `..data` symlink to it, so the files' directories are watched (a slow poll
// backs the watch up) and both files are re-read when anything there changes. A new pair is checked
// — both PEMs parse, the key is the certificate's — before new handshakes get it; a bad pair is
// reported and the previous pair stays. Connections already open keep the certificate they got.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";

export class ServingCertError extends Error {
  readonly code = "TETHER_ERR_DEMO_TLS";
  constructor(message: string) {
    super(`TETHER_ERR_DEMO_TLS: ${message}`);
    this.name = "ServingCertError";
  }
}

/** Where the pair is read from (the flags that named the files appear in errors). */
export interface ServingCertFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** A checked certificate (chain) and key. */
export interface ServingPair {
  readonly cert: string;
  readonly key: string;
  /** The leaf's serial number, upper-case hex as Node's TLS reports it. */
  readonly serial: string;
}

/** Checks a pair as a TLS server would load it; throws ServingCertError naming the flag and file. */
export function checkServingPair(cert: string, key: string, files: ServingCertFiles): ServingPair {
  const leafPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(cert)?.[0];
  if (leafPem === undefined) {
    throw new ServingCertError(`--tls-cert: no PEM certificate in ${files.certFile}`);
  }
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafPem);
  } catch (error) {
    throw new ServingCertError(`--tls-cert: ${files.certFile} is not a valid certificate: ${message(error)}`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new ServingCertError(`--tls-key: ${files.keyFile} is not a valid private key: ${message(error)}`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new ServingCertError(
      `--tls-key: the key in ${files.keyFile} does not match the certificate in ${files.certFile}`,
    );
  }
  return { cert, key, serial: leaf.serialNumber.toUpperCase() };
}

/** Reads and checks the pair; a missing file throws ServingCertError naming its flag. */
export async function readServingPair(files: ServingCertFiles): Promise<ServingPair> {
  const read = async (flag: "--tls-cert" | "--tls-key", file: string): Promise<string> => {
    try {
      return await readFile(file, "utf8");
    } catch (error) {
      throw new ServingCertError(`${flag}: cannot read ${file}: ${message(error)}`);
    }
  };
  const cert = await read("--tls-cert", files.certFile);
  const key = await read("--tls-key", files.keyFile);
  return checkServingPair(cert, key, files);
}

export interface ServingCertOptions {
  /** Called with the new pair once it is checked; new handshakes should use it from now on. */
  readonly onRotate: (pair: ServingPair, previous: ServingPair) => void;
  /** Called when changed files hold a bad pair (the previous pair stays). */
  readonly onRefused: (error: ServingCertError) => void;
  /** Quiet time after a directory event before the files are read. Default 100 ms. */
  readonly debounceMs?: number;
  /** Re-read this often even without an event. Default 10 s. */
  readonly pollMs?: number;
}

/** The current pair of a TLS server, kept current while its files rotate. */
export class ServingCertificate {
  private pair: ServingPair;
  private readonly files: ServingCertFiles;
  private readonly options: ServingCertOptions;
  private watchers: FSWatcher[] = [];
  private debounce: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  /** The texts last refused, so a bad pair is reported once, not at every poll. */
  private refused = "";

  constructor(files: ServingCertFiles, initial: ServingPair, options: ServingCertOptions) {
    this.files = files;
    this.pair = initial;
    this.options = options;
  }

  /** What a new handshake presents. */
  get current(): ServingPair {
    return this.pair;
  }

  /** Starts following the files' directories. */
  watch(): void {
    if (this.poll !== undefined) return;
    const dirs = new Set([this.files.certFile, this.files.keyFile].map((f) => path.dirname(path.resolve(f))));
    for (const dir of dirs) {
      try {
        const watcher = watch(dir, { persistent: false }, () => {
          this.trigger();
        });
        watcher.on("error", () => undefined); // the poll still reads the files
        this.watchers.push(watcher);
      } catch {
        // The directory may be gone for a moment; the poll still reads the files.
      }
    }
    this.poll = setInterval(() => {
      this.trigger();
    }, this.options.pollMs ?? 10_000);
    this.poll.unref();
  }

  close(): void {
    clearTimeout(this.debounce);
    clearInterval(this.poll);
    this.poll = undefined;
    for (const watcher of this.watchers) watcher.close();
    this.watchers = [];
  }

  private trigger(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.running = this.running.then(() => this.reload());
    }, this.options.debounceMs ?? 100);
    this.debounce.unref();
  }

  /** Re-reads the files; applies a changed, valid pair. Resolves true when it rotated. */
  async reload(): Promise<boolean> {
    let cert: string;
    let key: string;
    try {
      cert = await readFile(this.files.certFile, "utf8");
      key = await readFile(this.files.keyFile, "utf8");
    } catch {
      return false; // mid-swap or briefly absent: the next event or poll reads again
    }
    if (cert === this.pair.cert && key === this.pair.key) return false;
    let next: ServingPair;
    try {
      next = checkServingPair(cert, key, this.files);
    } catch (error) {
      // A read between the two files' swaps can mix old and new; the swap's next event reads again.
      if (this.refused !== cert + key) this.options.onRefused(error as ServingCertError);
      this.refused = cert + key;
      return false;
    }
    const previous = this.pair;
    this.pair = next;
    this.refused = "";
    this.options.onRotate(next, previous);
    return true;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
