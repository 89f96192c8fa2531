// SPDX-License-Identifier: GPL-2.0
/*
 * pathtrace probes. Every program parses the packet (or socket) it is given,
 * applies the user's filter from .rodata and, on a match, writes one
 * struct pathtrace_record to the ring buffer. Nothing here changes a packet or a
 * verdict: netfilter probes always return NF_ACCEPT.
 *
 * This file holds the programs, one section per group of points. Beside it, each a header that includes what
 * it uses: kernel.bpf.h (kernel constants, readers of kernel structures), parse.bpf.h (a packet's headers into
 * the record), output.bpf.h (the events ring, shared with device_verdicts.bpf.c), filter.bpf.h (the user's
 * filter and the follow table; the expression's interpreter in expression.bpf.h), bytes.bpf.h (the packet
 * bytes' ring, for --write), netfilter_trampolines.bpf.h (the netfilter records on kernels without netfilter
 * links).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "record.h"
#include "kernel.bpf.h"
#include "parse.bpf.h"
#include "output.bpf.h"
#include "filter.bpf.h"
#include "bytes.bpf.h"
#include "netfilter_trampolines.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* ---- a packet event's record -------------------------------------------- */

/* The record of a packet event at nh, in netns, when the user's filter wants the packet (filter.bpf.h). */
static __always_inline bool packet_record(struct pathtrace_record *r, __u16 point, const struct sk_buff *skb,
					  const unsigned char *nh, __u32 netns)
{
	return nh && packet_record_at(r, point, skb, nh, skb_head_end(skb), skb->_nfct, netns);
}

/* ---- netfilter hooks ---------------------------------------------------- */

static __always_inline int nf_probe(struct bpf_nf_ctx *ctx, __u8 slot)
{
	const struct nf_hook_state *st = ctx->state;
	struct sk_buff *skb = ctx->skb;
	struct pathtrace_record r;

	__u32 netns = st->net->ns.inum;
	if (netns_unwanted(netns))
		return NF_ACCEPT;
	if (!packet_record(&r, PT_POINT_NETFILTER, skb, skb_nh(skb), netns))
		return NF_ACCEPT;
	r.probe = slot;
	r.hook = st->hook;
	struct net_device *in = st->in, *out = st->out;
	if (in)
		r.ifindex = in->ifindex;
	if (out)
		r.ifindex_out = out->ifindex;
	if (slot == PT_NF_SLOT_ENTRY && r.hook == NF_INET_LOCAL_OUT)
		emit_bytes(skb, skb->head + skb->network_header, &r);
	emit(&r);
	return NF_ACCEPT;
}

/* One program per slot (PT_NF_SLOTS of them): the addon finds slot n's as nf_probe<n>. */
#define NF_SLOT(n)                                                                                                     \
	SEC("netfilter") int nf_probe##n(struct bpf_nf_ctx *ctx)                                                       \
	{                                                                                                              \
		return nf_probe(ctx, n);                                                                               \
	}
NF_SLOT(0)
NF_SLOT(1)
NF_SLOT(2)
NF_SLOT(3)
NF_SLOT(4)
NF_SLOT(5)
NF_SLOT(6)
NF_SLOT(7)
_Static_assert(PT_NF_SLOTS == 8, "one NF_SLOT(n) above per slot");

/* ---- device points ------------------------------------------------------ */

/* A packet at a device: on receive skb->data is at L3 and the network header
 * is not set yet; on transmit the network header is. */
static __always_inline void on_device(__u16 point, const struct sk_buff *skb, const struct net_device *dev, bool rx)
{
	struct pathtrace_record r;
	if (!skb_is_ip(skb))
		return;
	if (!dev)
		dev = skb->dev;
	__u32 netns = dev_netns(dev);
	if (netns_unwanted(netns))
		return;
	const unsigned char *nh = rx ? skb->data : skb_nh(skb);
	if (!packet_record(&r, point, skb, nh, netns))
		return;
	r.ifindex = dev->ifindex;
	/* Bytes first: user space reads the bytes ring before the events ring,
	 * so an event it sees has its bytes there already. */
	emit_bytes(skb, nh, &r);
	/* Handed to the driver, the skb may end its life in another namespace
	 * (veth) where nothing unfollows it. */
	if (point == PT_POINT_NET_DEV_START_XMIT)
		unfollow(&r);
	emit(&r);
}

SEC("tp_btf/napi_gro_receive_entry")
int BPF_PROG(on_napi_gro_receive_entry, struct sk_buff *skb)
{
	on_device(PT_POINT_NAPI_GRO_RECEIVE, skb, 0, true);
	return 0;
}

SEC("tp_btf/netif_rx")
int BPF_PROG(on_netif_rx, struct sk_buff *skb)
{
	on_device(PT_POINT_NETIF_RX, skb, 0, true);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(on_netif_receive_skb, struct sk_buff *skb)
{
	on_device(PT_POINT_NETIF_RECEIVE_SKB, skb, 0, true);
	return 0;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(on_net_dev_queue, struct sk_buff *skb)
{
	on_device(PT_POINT_NET_DEV_QUEUE, skb, 0, false);
	return 0;
}

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(on_net_dev_start_xmit, struct sk_buff *skb, struct net_device *dev)
{
	on_device(PT_POINT_NET_DEV_START_XMIT, skb, dev, false);
	return 0;
}

/* ---- qdisc: only where a packet is really queued ------------------------ */

static __always_inline void on_qdisc(__u16 point, const struct Qdisc *q, const struct sk_buff *skb)
{
	struct pathtrace_record r;
	if (!skb || !skb_is_ip(skb))
		return;
	struct net_device *dev = q->dev_queue->dev;
	__u32 netns = dev_netns(dev);
	if (netns_unwanted(netns))
		return;
	if (!packet_record(&r, point, skb, skb_nh(skb), netns))
		return;
	r.ifindex = dev->ifindex;
	r.aux = q->q.qlen;
	emit(&r);
}

SEC("tp_btf/qdisc_enqueue")
int BPF_PROG(on_qdisc_enqueue, struct Qdisc *q, const struct netdev_queue *txq, struct sk_buff *skb)
{
	on_qdisc(PT_POINT_QDISC_ENQUEUE, q, skb);
	return 0;
}

SEC("tp_btf/qdisc_dequeue")
int BPF_PROG(on_qdisc_dequeue, struct Qdisc *q, const struct netdev_queue *txq, int packets, struct sk_buff *skb)
{
	on_qdisc(PT_POINT_QDISC_DEQUEUE, q, skb);
	return 0;
}

/* ---- the application reads ---------------------------------------------- */

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(on_skb_copy_datagram_iovec, const struct sk_buff *skb, int len)
{
	struct pathtrace_record r;
	struct sock *sk = skb->sk;
	if (!sk)
		return 0;
	__u32 netns = sock_netns(sk);
	if (netns_unwanted(netns))
		return 0;
	if (!packet_record(&r, PT_POINT_SKB_COPY_DATAGRAM, skb, skb_nh(skb), netns))
		return 0;
	r.aux = len;
	r.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(r.comm, sizeof(r.comm));
	emit(&r);
	return 0;
}

/* ---- XDP's failures ----------------------------------------------------- */

/* The tracepoints of an XDP program's failure name the device, the program and the action or error, not the
 * packet: each is kept on its CPU (a record of its own, in per-CPU memory) until the free that follows there.
 * That free, when it is of a packet the filter wants and on the same device, tells it as a step of that packet
 * (xdp_failure_told); any other free, wanted or not, forgets it, so that a failure about a packet the filter
 * leaves out never lands on the next one. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pathtrace_record);
} xdp_failed SEC(".maps");

/* A failure is the free's when that comes within this time on its CPU (the kernel frees right after it). */
#define XDP_FAILURE_NS 1000000

static __always_inline void on_xdp_failure(__u16 point, const struct net_device *dev, const struct bpf_prog *prog,
					   __u32 aux)
{
	__u32 zero = 0;
	struct pathtrace_record *f = bpf_map_lookup_elem(&xdp_failed, &zero);
	if (!f || netns_unwanted(dev_netns(dev)))
		return;
	f->ts_ns = bpf_ktime_get_ns();
	f->point = point;
	f->ifindex = dev->ifindex;
	f->location = prog->aux->id;
	f->aux = aux;
	bpf_probe_read_kernel(f->comm, sizeof(f->comm), prog->aux->name);
}

SEC("tp_btf/xdp_exception")
int BPF_PROG(on_xdp_exception, const struct net_device *dev, const struct bpf_prog *xdp, __u32 act)
{
	on_xdp_failure(PT_POINT_XDP_EXCEPTION, dev, xdp, act);
	return 0;
}

SEC("tp_btf/xdp_redirect_err")
int BPF_PROG(on_xdp_redirect_err, const struct net_device *dev, const struct bpf_prog *xdp, const void *tgt, int err)
{
	on_xdp_failure(PT_POINT_XDP_REDIRECT_ERR, dev, xdp, err);
	return 0;
}

SEC("tp_btf/xdp_redirect_map_err")
int BPF_PROG(on_xdp_redirect_map_err, const struct net_device *dev, const struct bpf_prog *xdp, const void *tgt,
	     int err)
{
	on_xdp_failure(PT_POINT_XDP_REDIRECT_MAP_ERR, dev, xdp, err);
	return 0;
}

/* The failure kept on this CPU, taken by the free that follows it (NULL: none, or too old); *at: its time. */
static __always_inline struct pathtrace_record *xdp_failure_taken(__u64 *at)
{
	__u32 zero = 0;
	struct pathtrace_record *f = bpf_map_lookup_elem(&xdp_failed, &zero);
	if (!f || !f->ts_ns)
		return 0;
	*at = f->ts_ns;
	f->ts_ns = 0;
	return bpf_ktime_get_ns() - *at < XDP_FAILURE_NS ? f : 0;
}

/* Failure f (kept at time at) as a step of the packet whose free r is: its tuple and skb, the failure's point,
 * time, device, program and action. Written over f, which is per-CPU memory (a second record on the stack
 * would not fit). */
static __always_inline void xdp_failure_told(struct pathtrace_record *f, __u64 at, const struct pathtrace_record *r)
{
	__u16 point = f->point;
	__u64 prog = f->location;
	__u32 aux = f->aux;
	char name[16];
	__builtin_memcpy(name, f->comm, sizeof(name));
	*f = *r;
	f->ts_ns = at;
	f->point = point;
	f->location = prog;
	f->aux = aux;
	f->reason = 0;
	if (!f->inner_proto) /* an ICMP error's quoted destination shares comm's bytes: the id names it alone */
		__builtin_memcpy(f->comm, name, sizeof(name));
	emit(f);
}

/* ---- end of life -------------------------------------------------------- */

/* The way-out drops (record.h, PT_MTU_FROM_ROUTE), by the kernel's names: their numbers change between kernels, and
 * PKT_TOO_BIG came in 5.18. On a kernel without reasons every drop is one (reason is PT_REASON_NONE). */
static __always_inline bool way_out_drop(__u32 reason)
{
	if (reason == PT_REASON_NONE)
		return true;
	if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED))
		return true;
	return bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_PKT_TOO_BIG) &&
	       reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_PKT_TOO_BIG);
}

/* The way out the packet's route gave it, as the kernel's MTU check saw it: the device and MTU of its dst (the route
 * skb->_skb_refdst holds until the free), and the length held against that MTU. The MTU as the kernel derives it
 * (ip_dst_mtu_maybe_forward and ipv4_mtu; ip6_dst_mtu_maybe_forward and ip6_mtu): the route's MTU metric (IPv6, for a
 * forwarded packet: only a locked one), else the device's (IPv6: its mtu6). A path MTU IPv4 learned (rt_pmtu) is left
 * out: where one applied, the ICMP error the kernel sends with the drop names the MTU itself. */
static __noinline void way_out(const struct sk_buff *skb, struct pathtrace_record *r)
{
	const struct dst_entry *dst = (const void *)(skb->_skb_refdst & SKB_DST_PTRMASK);
	if (!dst)
		return;
	struct net_device *dev = BPF_CORE_READ(dst, dev);
	if (!dev)
		return;
	r->ifindex_out = BPF_CORE_READ(dev, ifindex);
	__u32 metrics[RTAX_MTU] = {}; /* RTAX_LOCK's bits, RTAX_MTU */
	unsigned long m = BPF_CORE_READ(dst, _metrics) & ~DST_METRICS_FLAGS;
	if (m)
		bpf_probe_read_kernel(metrics, sizeof(metrics), (const void *)m);
	__u32 metric = metrics[RTAX_MTU - 1];
	bool locked = metrics[RTAX_LOCK - 1] & (1 << RTAX_MTU);
	/* A forwarded packet has no socket. */
	if (metric && (r->family == 4 || locked || skb->sk))
		r->aux = metric | PT_MTU_FROM_ROUTE;
	else
		r->aux = r->family == 6 ? BPF_CORE_READ(dev, ip6_ptr, cnf.mtu6) : BPF_CORE_READ(dev, mtu);
	/* Its IP length (IPv4's total length, IPv6's payload length and header); of a GSO packet, one segment's: its
	 * headers and gso_size of payload. */
	__be16 field;
	if (bpf_probe_read_kernel(&field, sizeof(field), skb_nh(skb) + (r->family == 4 ? 2 : 4)))
		return;
	__u32 len = bpf_ntohs(field) + (r->family == 6 ? sizeof(struct ipv6hdr) : 0);
	const struct skb_shared_info *sh = (const void *)(skb->head + skb->end);
	__u16 gso = BPF_CORE_READ(sh, gso_size);
	if (gso && len > r->len)
		len = len - r->len + gso;
	r->ip_len = len > 0xffff ? 0xffff : len;
}

/* nft_chains: whether a drop inside nft_do_chain may be freed here (kernels with drop reasons). */
static __always_inline void on_free(__u16 point, struct sk_buff *skb, void *location, __u32 reason, bool nft_chains)
{
	struct pathtrace_record r;
	__u64 failed_at = 0;
	struct pathtrace_record *failed = point == PT_POINT_KFREE_SKB ? xdp_failure_taken(&failed_at) : 0;
	if (!skb_is_ip(skb))
		return;
	__u32 netns = skb_netns(skb);
	if (netns && netns_unwanted(netns)) /* 0: not known */
		return;
	if (!packet_record(&r, point, skb, skb_nh(skb), netns))
		return;
	unfollow(&r);
	r.location = (__u64)location;
	r.reason = reason;
	struct net_device *dev = skb->dev;
	if (dev)
		r.ifindex = dev->ifindex;
	if (failed && failed->ifindex == r.ifindex)
		xdp_failure_told(failed, failed_at, &r);
	if (point == PT_POINT_KFREE_SKB && way_out_drop(reason))
		way_out(skb, &r);
	/* Only where the addon keeps nft_active: elsewhere this is dead code, so the verifier never sees
	 * nftables' structures, which older kernels have no BTF for. */
	if (nft_chains && nft_active_kept && point == PT_POINT_KFREE_SKB)
		nft_chain_freeing(skb, &r);
	emit(&r);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(on_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	on_free(PT_POINT_KFREE_SKB, skb, location, reason, true);
	return 0;
}

SEC("tp_btf/consume_skb")
int BPF_PROG(on_consume_skb, struct sk_buff *skb, void *location)
{
	on_free(PT_POINT_CONSUME_SKB, skb, location, 0, false);
	return 0;
}

/* Older argument lists: a program may not read an argument its tracepoint
 * lacks, so the addon loads one of each pair, by the arity in the kernel's BTF.
 * kfree_skb has a reason since 5.17, consume_skb a location since 6.3. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(on_kfree_skb_noreason, struct sk_buff *skb, void *location)
{
	on_free(PT_POINT_KFREE_SKB, skb, location, PT_REASON_NONE, false);
	return 0;
}

SEC("tp_btf/consume_skb")
int BPF_PROG(on_consume_skb_noloc, struct sk_buff *skb)
{
	on_free(PT_POINT_CONSUME_SKB, skb, 0, 0, false);
	return 0;
}

/* ---- TCP and sockets ---------------------------------------------------- */

/* Tuple of a socket (or request socket) as local -> remote. */
static __always_inline bool sock_tuple(const struct sock_common *sk, __u8 proto, bool full, struct pathtrace_record *r)
{
	/* Direct loads (BTF pointers): a probe read each would cost as much as the whole record. */
	__u16 family = sk->skc_family;
	if (family == AF_INET) {
		r->family = 4;
		__builtin_memcpy(r->saddr, &sk->skc_rcv_saddr, 4);
		__builtin_memcpy(r->daddr, &sk->skc_daddr, 4);
	} else if (family == AF_INET6) {
		r->family = 6;
		__builtin_memcpy(r->saddr, &sk->skc_v6_rcv_saddr, 16);
		__builtin_memcpy(r->daddr, &sk->skc_v6_daddr, 16);
		/* An IPv4 peer of a dual-stack socket: v4-mapped, or not yet filled
		 * in (a child socket's first state change). Report it as IPv4, as
		 * its packets are. */
		__u32 *d = (__u32 *)r->daddr;
		__be32 v4 = sk->skc_daddr;
		if (d[0] == 0 && d[1] == 0 && (d[2] == bpf_htonl(0xffff) || (d[2] == 0 && d[3] == 0 && v4))) {
			r->family = 4;
			__builtin_memset(r->saddr, 0, 32);
			__builtin_memcpy(r->saddr, &sk->skc_rcv_saddr, 4);
			__builtin_memcpy(r->daddr, &v4, 4);
		}
	} else {
		return false;
	}
	r->l4proto = proto;
	r->sport = sk->skc_num;
	/* Closing unhashes a socket and zeroes skc_num before its state becomes
	 * CLOSE; a full socket's inet_sport keeps the port (an inet_sock field past
	 * struct sock: a probe read, as a direct load there is refused). */
	if (full && !r->sport)
		r->sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock *)sk, inet_sport));
	r->dport = bpf_ntohs(sk->skc_dport);
	r->netns = sk->skc_net.net->ns.inum;
	return true;
}

/* A socket the filter surely does not want, from three direct loads (another namespace, or ports it does not
 * want): sock_recv_length runs for every datagram read, and the whole tuple costs ten probe reads. A closing
 * socket's zeroed local port goes the long way (sock_tuple reads the port it kept). */
static __always_inline bool sock_ruled_out(const struct sock_common *sk)
{
	if (netns_unwanted(sk->skc_net.net->ns.inum))
		return true;
	__u16 num = sk->skc_num;
	return !filter.any_port && num && !port_wanted(num) && !port_wanted(bpf_ntohs(sk->skc_dport));
}

/* The expression on a socket record: on a packet built from its tuple, either way, since the record is
 * about the connection's packets in both directions. */
static __noinline bool sock_expr_tried(const struct pathtrace_record *r)
{
	return (expr_synthesize(r, false) && expr_run()) || (expr_synthesize(r, true) && expr_run());
}

static __always_inline bool sock_expr_wanted(const struct pathtrace_record *r)
{
	return !filter.expression || sock_expr_tried(r);
}

/* A record about a socket; full is false for request sockets (not an inet_sock). */
static __always_inline void emit_sock(struct pathtrace_record *r, const struct sock_common *sk, __u8 proto, bool full)
{
	r->location = (__u64)sk;
	if (sock_ruled_out(sk) || !sock_tuple(sk, proto, full, r) || !wanted(r) || !sock_expr_wanted(r))
		return;
	r->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	emit(r);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(on_tcp_send_reset, const struct sock *sk, const struct sk_buff *skb)
{
	struct pathtrace_record r;
	init(&r, PT_POINT_TCP_SEND_RESET, skb);
	/* The tuple is that of the packet that caused the reset, so that the
	 * reset joins that packet's journey. Without one, the socket's. */
	if (skb) {
		r.netns = skb_netns(skb);
		if (!parse_skb_nh(skb, &r) || !packet_wanted(skb, &r, skb_nh(skb)))
			return 0;
		emit(&r);
	} else if (sk) {
		emit_sock(&r, &sk->__sk_common, IPPROTO_TCP, true);
	}
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(on_tcp_receive_reset, struct sock *sk)
{
	struct pathtrace_record r;
	init(&r, PT_POINT_TCP_RECEIVE_RESET, 0);
	emit_sock(&r, &sk->__sk_common, IPPROTO_TCP, true);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(on_tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb)
{
	struct pathtrace_record r;
	init(&r, PT_POINT_TCP_RETRANSMIT_SKB, skb);
	/* The queued skb has no headers yet: seq and flags come from its control block. */
	const struct tcp_skb_cb *cb = (const struct tcp_skb_cb *)&skb->cb[0];
	r.seq = BPF_CORE_READ(cb, seq);
	r.tcp_flags = BPF_CORE_READ(cb, tcp_flags);
	r.len = BPF_CORE_READ(cb, end_seq) - r.seq;
	emit_sock(&r, &sk->__sk_common, IPPROTO_TCP, true);
	return 0;
}

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(on_tcp_retransmit_synack, const struct sock *sk, const struct request_sock *req)
{
	struct pathtrace_record r;
	init(&r, PT_POINT_TCP_RETRANSMIT_SYNACK, 0);
	r.tcp_flags = TCPHDR_SYN | TCPHDR_ACK;
	emit_sock(&r, &req->__req_common, IPPROTO_TCP, false);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_inet_sock_set_state, const struct sock *sk, int oldstate, int newstate)
{
	struct pathtrace_record r;
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	init(&r, PT_POINT_INET_SOCK_SET_STATE, 0);
	r.old_state = oldstate;
	r.new_state = newstate;
	emit_sock(&r, &sk->__sk_common, IPPROTO_TCP, true);
	return 0;
}

/* UDP reads: udp_recvmsg copies linear skbs without skb_copy_datagram_iovec,
 * so the read shows at the socket, by local port, in the reader's context. */
SEC("tp_btf/sock_recv_length")
int BPF_PROG(on_sock_recv_length, struct sock *sk, int ret, int flags)
{
	struct pathtrace_record r;
	if (ret <= 0 || (flags & MSG_PEEK) || sk->sk_protocol != IPPROTO_UDP)
		return 0;
	init(&r, PT_POINT_SOCK_RECV_LENGTH, 0);
	r.aux = ret;
	emit_sock(&r, &sk->__sk_common, IPPROTO_UDP, true);
	return 0;
}

/* ---- the expression's self-test ----------------------------------------- */

/* Runs the expression on a packet given by BPF_PROG_TEST_RUN (an Ethernet frame, padded to the window), for the
 * test that holds it to tcpdump's answers (test/helpers/packets.ts, corpusDisagreements). Never attached. */
SEC("tc")
int expr_test(struct __sk_buff *skb)
{
	struct expr_buf *b = expr_buf();
	if (!b)
		return -1;
	/* The addon pads each frame to the whole window: a load of constant size. */
	if (bpf_skb_load_bytes(skb, 14, b->pkt, PT_EXPR_WINDOW))
		return -1;
	b->wirelen = expr_wirelen(b);
	b->caplen = b->wirelen < PT_EXPR_WINDOW ? b->wirelen : PT_EXPR_WINDOW;
	return expr_run();
}
