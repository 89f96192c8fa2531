// A queue with O(1) shift, for the packets that wait for their read.

/** Bounded: past 65536 entries it forgets its oldest half. */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  push(x: T): void {
    if (this.items.length - this.head >= 65536) this.head += 32768;
    this.compact();
    this.items.push(x);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head++];
    this.compact();
    return x;
  }
  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
