// A first-in first-out queue for queues that nearly always hold one item: a downstream connection's
// requests read and not yet answered, more than one only when the client pipelines. The head is a
// field and only the items behind it live in an array, so a queue of one never grows and shrinks an
// array per item (V8 shrinks a one-element array's backing store on shift() in its runtime, and the
// next push grows it again).
export class HeadQueue<T> {
  private first: T | undefined = undefined;
  private readonly rest: T[] = [];

  /** The oldest item. */
  get head(): T | undefined {
    return this.first;
  }

  get size(): number {
    return this.first === undefined ? 0 : this.rest.length + 1;
  }

  push(item: T): void {
    if (this.first === undefined) this.first = item;
    else this.rest.push(item);
  }

  /** Takes the oldest item off; the next one becomes the head. */
  shift(): T | undefined {
    const item = this.first;
    this.first = this.rest.length === 0 ? undefined : this.rest.shift();
    return item;
  }

  /** Empties the queue; its items, oldest first. */
  drain(): T[] {
    const items = this.first === undefined ? [] : [this.first, ...this.rest.splice(0)];
    this.first = undefined;
    return items;
  }
}
