// Names of kernel constants. Values that change between kernel versions
// (drop reasons, reset reasons) are read from the running kernel's BTF.

/** enum nf_inet_hooks (uapi, stable) */
export const HOOK_NAMES = ['PRE_ROUTING', 'LOCAL_IN', 'FORWARD', 'LOCAL_OUT', 'POST_ROUTING'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

export const NFPROTO_IPV4 = 2;
export const NFPROTO_IPV6 = 10;

/** TCP states (include/net/tcp_states.h: an anonymous enum, stable since 2.x). */
export const TCP_STATE_NAMES = [
  '',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT1',
  'FIN_WAIT2',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'CLOSING',
  'NEW_SYN_RECV',
  'BOUND_INACTIVE',
];

export function tcpStateName(n: number): string {
  return TCP_STATE_NAMES[n] || `STATE_${n}`;
}

/** Maps a kernel enum's values to names without their common prefix. */
export class EnumNames {
  private readonly byValue = new Map<number, string>();

  constructor(entries: Record<string, number>, prefix: string) {
    for (const [name, value] of Object.entries(entries)) {
      if (!this.byValue.has(value)) this.byValue.set(value, name.startsWith(prefix) ? name.slice(prefix.length) : name);
    }
  }

  get size(): number {
    return this.byValue.size;
  }

  name(value: number): string {
    return this.byValue.get(value) ?? `${value}`;
  }
}
