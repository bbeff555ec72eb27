// Deadlines that many short-lived objects share without a Node timer each (a proxied request's route
// and per-try timeouts): one list per duration and one timer per list. Entries of a list all last the
// same time, so they fall due in the order they were added: adding one links it at the tail, removing
// one unlinks it (a few field writes, no Timeout object, no clearTimeout). The list's timer is armed
// for its first entry; when it fires it runs every entry due by then and re-arms for the next one, so
// an entry removed early costs nothing more.
// An entry never fires before its duration has passed (performance.now()); it may fire up to about
// 2 ms later than a setTimeout of its own would (the timer's millisecond rounding, re-armed once).
// The timers are unref'd: a pending deadline never keeps the process alive by itself.
import { timerDelay } from "./timers.ts";

/** An object with at most one pending deadline; subclasses say what happens when it passes. */
export abstract class Deadline {
  /** performance.now() at which the pending deadline falls due. */
  dueAt = 0;
  deadlinePrev: Deadline | undefined = undefined;
  deadlineNext: Deadline | undefined = undefined;
  deadlineList: DeadlineList | undefined = undefined;

  /** The deadline passed; it is no longer pending. */
  abstract onDeadline(): void;

  /** A deadline is pending. */
  get deadlinePending(): boolean {
    return this.deadlineList !== undefined;
  }

  /** Falls due `ms` after `now` (a pending deadline is replaced). */
  startDeadline(ms: number, now: number = performance.now()): void {
    deadlineList(ms).add(this, now);
  }

  /** Drops the pending deadline, if any. */
  cancelDeadline(): void {
    this.deadlineList?.remove(this);
  }
}

/** The entries of one duration, earliest first, and the timer for the first. */
export class DeadlineList {
  readonly ms: number;
  private head: Deadline | undefined;
  private tail: Deadline | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(ms: number) {
    this.ms = ms;
  }

  add(entry: Deadline, now: number): void {
    entry.deadlineList?.remove(entry);
    entry.dueAt = now + this.ms;
    entry.deadlineList = this;
    entry.deadlinePrev = this.tail;
    entry.deadlineNext = undefined;
    if (this.tail === undefined) this.head = entry;
    else this.tail.deadlineNext = entry;
    this.tail = entry;
    // An armed timer is never later than this entry: it was armed for an entry added before it.
    this.armIfIdle(this.ms);
  }

  remove(entry: Deadline): void {
    if (entry.deadlineList !== this) return;
    const prev = entry.deadlinePrev;
    const next = entry.deadlineNext;
    if (prev === undefined) this.head = next;
    else prev.deadlineNext = next;
    if (next === undefined) this.tail = prev;
    else next.deadlinePrev = prev;
    entry.deadlinePrev = undefined;
    entry.deadlineNext = undefined;
    entry.deadlineList = undefined;
  }

  /** Entries pending (walks the list: for tests and diagnostics). */
  get size(): number {
    let n = 0;
    for (let e = this.head; e !== undefined; e = e.deadlineNext) n++;
    return n;
  }

  /** Arms the timer for `ms` from now, unless it is armed (for an earlier entry, or by a handler). */
  private armIfIdle(ms: number): void {
    if (this.timer === undefined)
      this.timer = setTimeout(deadlinesDue, timerDelay(Math.ceil(ms)), this).unref();
  }

  /** The timer fired: runs the entries due now, then re-arms for the next one. */
  runDue(): void {
    this.timer = undefined;
    const now = performance.now();
    try {
      for (let e = this.head; e !== undefined && e.dueAt <= now; e = this.head) {
        this.remove(e);
        e.onDeadline();
      }
    } finally {
      const head = this.head;
      if (head !== undefined) this.armIfIdle(Math.max(1, head.dueAt - now));
    }
  }
}

function deadlinesDue(list: DeadlineList): void {
  list.runDue();
}

const lists = new Map<number, DeadlineList>();

/** The list of every deadline lasting `ms`. */
export function deadlineList(ms: number): DeadlineList {
  let list = lists.get(ms);
  if (list === undefined) {
    list = new DeadlineList(ms);
    lists.set(ms, list);
  }
  return list;
}
