// What the correlator learns of a flow from its sockets and its answers: TCP state changes (connect()'s before
// it has a port), retransmissions and resets counted, and the answers this host began (SYN-ACK, RST, ICMP
// error), which tell an answered SYN and a REJECT.
import type { FlowState, FlowTable } from './flows.js';
import { TCP } from './journey.js';
import { IPPROTO, Point, snapshotEvent, type TraceEvent } from '../trace/record.js';
import { icmpMtu, isIcmpError } from './identity.js';
import type { NamedEvent } from './packet.js';

export class SocketEvents {
  /** State changes of sockets that had no local port yet (connect()). */
  private pendingConnects: NamedEvent[] = [];

  /** idleNs: how long a pending connect() waits for its SYN. */
  constructor(
    private readonly flows: FlowTable,
    private readonly idleNs: number,
  ) {}

  /** A socket event (state change, SYN-ACK or segment retransmission, reset received): onto its flow. */
  push(e: NamedEvent): void {
    if (e.point === Point.INET_SOCK_SET_STATE && e.sport === 0) {
      // connect() enters SYN_SENT before it picks the local port: the SYN that follows names the flow.
      this.pendingConnects = this.pendingConnects.filter((p) => e.t - p.t < this.idleNs);
      this.pendingConnects.push(snapshotEvent(e));
      return;
    }
    const f = this.flows.of(e);
    switch (e.point) {
      case Point.TCP_RETRANSMIT_SYNACK:
        f.synackRetransmits++;
        break;
      case Point.TCP_RETRANSMIT_SKB:
        f.retransmits++;
        break;
      case Point.TCP_RECEIVE_RESET:
        f.resetsReceived++;
        break;
      case Point.INET_SOCK_SET_STATE:
        this.flows.stateChange(e, e.t, e.oldState, e.newState, { pid: e.pid, comm: e.comm });
        break;
    }
  }

  /** A packet this host sends starts a journey (event e, flow f): a SYN names the flow of a pending connect();
   *  a SYN-ACK, RST or ICMP error is an answer. */
  sending(e: TraceEvent, f: FlowState): void {
    if (e.proto === IPPROTO.TCP && e.flags === TCP.SYN) {
      const i = this.pendingConnects.findIndex((p) => p.dport === e.dport && p.dst === e.dst);
      const [p] = i >= 0 ? this.pendingConnects.splice(i, 1) : [];
      if (p) this.flows.stateChange(e, p.t, p.oldState, p.newState, { pid: p.pid, comm: p.comm });
    }
    if (e.proto === IPPROTO.TCP && e.flags & (TCP.SYN | TCP.RST)) {
      f.replies.push({ t: e.t, kind: e.flags & TCP.RST ? 'R' : 'SA' });
    }
    if ((e.proto === IPPROTO.TCP && e.flags & TCP.RST) || isIcmpError(e)) {
      f.lastAnswer = e.t;
      const mtu = icmpMtu(e);
      f.lastAnswerIcmp = isIcmpError(e) ? { type: e.icmpType, code: e.icmpCode, ...(mtu && { mtu }) } : null;
    }
  }
}

/** TCP sent a reset in flow f (tcp_send_reset) at time t. */
export function resetSent(f: FlowState, t: number): void {
  f.resetsSent++;
  f.lastStackReset = t;
}
