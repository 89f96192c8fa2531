// What the correlator produces: one packet's journey through this host.
import type { Layer } from './classify.js';
import type { HookName } from './kernel-names.js';

export type Fate = 'delivered' | 'sent' | 'forwarded' | 'dropped' | 'unfinished';

/** How the journey's observation ended. */
export type Ending =
  | 'freed'        // a kfree_skb / consume_skb closed it
  | 'left'         // handed to a device (or to the local stack) and not seen again
  | 'timeout'      // no event for too long, in the middle of the path
  | 'trace-ended'; // the trace stopped while it was under way

export interface Step {
  point: string;                 // tracepoint name, or "netfilter"
  hook?: HookName;               // netfilter steps
  at?: 'entry' | 'exit';         // netfilter steps: which probe
  t: number;                     // ns since the trace started
  ifindex?: number;              // device of RX/TX steps
  location?: string;             // kfree/consume: the freeing function
  reason?: string;               // kfree_skb: the drop reason
}

export interface Drop {
  layer: Layer;
  hook: HookName | null;
  reason: string;
  location: string;
}

export interface Journey {
  id: number;
  netns: number;
  family: 4 | 6;
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  flags: number;
  seq: number;
  ack: number;
  len: number;
  ipId: number;
  start: number;
  steps: Step[];
  direction: 'in' | 'out' | 'forward';
  fate: Fate;
  drop: Drop | null;
  ending: Ending;
  /** Passed a point where tcpdump on its device would have captured it. */
  tcpdump: boolean;
  /** Devices whose tcpdump tap it passed (ifindex). */
  tcpdumpDevices: number[];
  /** 0 for the first copy of a TCP segment, n for its n-th retransmission. */
  retransmit: number;
  /** For incoming TCP: did TCP get it, and what did it answer (SYNs). */
  tcp?: { saw: boolean; reply: string | null };
  /** Key of the flow (connection) it belongs to. */
  flow: string;
}

export const TCP_FLAG_LETTERS = 'FSRPAUEC';

/** TCP flags as letters in header bit order: S, SA, FPA, RA... */
export function flagLetters(flags: number): string {
  let s = '';
  for (let i = 0; i < 8; i++) if (flags & (1 << i)) s += TCP_FLAG_LETTERS[i];
  return s;
}

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;
