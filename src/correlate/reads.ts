// Read matching: packets delivered to a local socket wait for the application's read, which names no packet;
// which one it read follows from the socket's queue order (UDP) or the sequence numbers it copied (TCP).
import { side, type FlowState } from './flows.js';
import { IPPROTO, type TraceEvent } from '../trace/record.js';
import { Fifo } from './fifo.js';
import type { Active, NamedEvent } from './packet.js';

/** Data of one direction of a TCP flow delivered and not yet read, and where the reader is. */
interface TcpUnread {
  queue: Fifo<Active>;
  /** The skb the last read copied from (address and sequence number: addresses are reused), and how much
   *  of it has been copied (reads are sequential). */
  skb: number;
  seq: number;
  copied: number;
}

const newUnread = (): TcpUnread => ({ queue: new Fifo(), skb: 0, seq: 0, copied: 0 });

export class ReadQueues {
  /** UDP datagrams delivered and not yet read, by local port, in arrival order (settled ones are skipped). */
  readonly udp = new Map<number, Fifo<Active>>();
  /** TCP data delivered and not yet read, by flow and direction (sequence space), in arrival order. */
  readonly tcp = new Map<FlowState, [TcpUnread, TcpUnread]>();

  /** live: whether a packet is still under way (not settled); read: settles a packet by the read event. */
  constructor(
    private readonly live: (a: Active) => boolean,
    private readonly read: (a: Active, e: NamedEvent) => void,
  ) {}

  /** Queues a TCP or UDP packet that left LOCAL_IN, by the tuple its socket sees (after any DNAT): the one its
   *  reads carry. */
  queue(a: Active, e: TraceEvent): void {
    let q: Fifo<Active> | undefined;
    if (a.j.proto === IPPROTO.TCP) {
      let sides = this.tcp.get(a.flow);
      if (!sides) this.tcp.set(a.flow, (sides = [newUnread(), newUnread()]));
      q = sides[side(e)].queue;
    } else {
      q = this.udp.get(e.dport);
      if (!q) this.udp.set(e.dport, (q = new Fifo()));
    }
    // Settled ones at the head go first, so the queue holds what waits.
    this.dropSettled(q);
    q.push(a);
  }

  /** A UDP socket's read on local port: datagrams wait in their socket's queue in arrival order, so the oldest
   *  still waiting is the one read. */
  udpRead(port: number, e: NamedEvent): void {
    const queue = this.udp.get(port);
    let oldest: Active | undefined;
    for (let a = queue?.shift(); a && !oldest; a = oldest ? undefined : queue!.shift()) {
      if (this.live(a)) oldest = a;
    }
    if (oldest) this.read(oldest, e);
  }

  /** A TCP read copies from one queued skb, which holds the segments TCP coalesced into it:
   *  every unread segment of its direction up to the end of what was copied has been read.
   *  False when no delivered data waits for it (the read then joins its skb's journey, if any). */
  tcpRead(flow: FlowState | undefined, e: NamedEvent): boolean {
    const unread = flow && this.tcp.get(flow)?.[side(e)];
    if (!unread || !unread.queue.peek()) return false;
    // The event does not give the offset in the skb: a read that continues the last one's skb starts where it ended.
    unread.copied = unread.skb === e.skb && unread.seq === e.seq ? unread.copied + e.aux : e.aux;
    unread.skb = e.skb;
    unread.seq = e.seq;
    const end = (e.seq + unread.copied) >>> 0;
    for (let a = unread.queue.peek(); a; a = unread.queue.peek()) {
      if (!this.live(a)) {
        unread.queue.shift();
        continue;
      } // settled already
      const before = (end - a.j.seq) >>> 0;
      if (before === 0 || before > 2 ** 31) break; // starts at or after the end of this read
      unread.queue.shift();
      this.read(a, e);
    }
    return true;
  }

  /** Drops settled packets from the queues (they settle oldest first, by their read or its timeout). Else a
   *  queue holds up to 64 k settled journeys after a flood. */
  prune(): void {
    for (const [port, q] of this.udp) if (this.dropSettled(q)) this.udp.delete(port);
    for (const sides of this.tcp.values()) for (const u of sides) this.dropSettled(u.queue);
  }

  /** Drops the settled packets at the head of a read queue; true when nothing waits in it any more. */
  private dropSettled(q: Fifo<Active>): boolean {
    for (let h = q.peek(); h && !this.live(h); h = q.peek()) q.shift();
    return q.peek() === undefined;
  }
}
