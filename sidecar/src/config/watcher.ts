// Watches the config file's directory (a ConfigMap volume swaps a `..data` symlink, so the file's
// own inode never changes) and re-reads the file on any event; a slow poll backs up lost events.
// Only a change in content is reported, and only once two reads in a row agree (a file being
// written in place is not trusted half-way).
import { watch, type FSWatcher } from "node:fs";
import path from "node:path";
import { readSettled, type SettleOptions } from "./load.ts";
import { timerDelay } from "../timers.ts";

export interface WatcherOptions {
  readonly debounceMs?: number;
  readonly pollMs?: number;
  readonly settle?: SettleOptions;
}

export class ConfigWatcher {
  private readonly file: string;
  private readonly onChange: (text: string) => Promise<void>;
  private readonly debounceMs: number;
  private readonly pollMs: number;
  private readonly settle: SettleOptions;
  private lastText: string;
  private fsWatcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    file: string,
    initialText: string,
    onChange: (text: string) => Promise<void>,
    options: WatcherOptions = {},
  ) {
    this.file = path.resolve(file);
    this.lastText = initialText;
    this.onChange = onChange;
    this.debounceMs = options.debounceMs ?? 50;
    this.pollMs = options.pollMs ?? 5000;
    this.settle = options.settle ?? {};
  }

  start(): void {
    this.fsWatcher = watch(path.dirname(this.file), { persistent: false }, () => {
      this.trigger();
    });
    this.fsWatcher.on("error", () => undefined);
    this.poll = setInterval(() => {
      this.trigger();
    }, timerDelay(this.pollMs));
    this.poll.unref();
  }

  private trigger(): void {
    if (this.stopped) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.running = this.running.then(() => this.check());
    }, timerDelay(this.debounceMs));
  }

  private async check(): Promise<void> {
    if (this.stopped) return;
    let text: string;
    try {
      text = await readSettled(this.file, this.settle);
    } catch {
      return; // mid-swap, briefly absent or still being written: the next event or poll reads it again
    }
    if (text === this.lastText) return;
    this.lastText = text;
    await this.onChange(text);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.debounce);
    clearInterval(this.poll);
    this.fsWatcher?.close();
  }
}
