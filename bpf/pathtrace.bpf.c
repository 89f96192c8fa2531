// SPDX-License-Identifier: GPL-2.0
/*
 * pathtrace probes. Every program parses the packet (or socket) it is given,
 * applies the user's filter from .rodata and, on a match, writes one
 * struct pathtrace_record to the ring buffer. Nothing here changes a packet or a
 * verdict: netfilter probes always return NF_ACCEPT.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "record.h"

#define NF_ACCEPT 1
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_ICMPV6 58

char LICENSE[] SEC("license") = "GPL";

const volatile struct pathtrace_filter filter = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by the addon before load */
} events SEC(".maps");

/* Packet bytes for --write (only used when filter.snaplen is set). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* resized by the addon */
} packet_bytes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pathtrace_bytes);
} bytes_scratch SEC(".maps");

/* Records that did not fit in their ring buffer, per CPU: events (PT_LOST_EVENTS)
 * and packet bytes (PT_LOST_BYTES: the packet is then written without them). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

static __always_inline void count_lost(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&lost, &which);
	if (n)
		*n += 1;
}

/* The time is taken once a record is wanted: a filtered-out event costs no clock read. */
static __always_inline void stamp(struct pathtrace_record *r)
{
	if (!r->ts_ns)
		r->ts_ns = bpf_ktime_get_ns();
}

static __always_inline void emit(struct pathtrace_record *r)
{
	stamp(r);
	/* No wakeups: user space drains the ring on its own timer, in batches. */
	if (bpf_ringbuf_output(&events, r, sizeof(*r), BPF_RB_NO_WAKEUP))
		count_lost(PT_LOST_EVENTS);
}

/* ---- following a packet whose tuple NAT rewrote -------------------------- */

/* Packets that matched: a later event of the same packet is reported even
 * when NAT has made its tuple miss the filter. Direct-mapped by what NAT
 * keeps (TCP's sequence number, else IP id and length; the skb address is a
 * pointer the verifier will not hash), checked by skb address; a collision
 * only forgets a packet. */
struct follow {
	__u64 skb;
	__u32 key;
	__u8 proto;
	__u8 bytes_sent; /* --write: this packet's bytes went out already */
	__u8 verdict;    /* FOLLOWED; with an expression also PASSED_BY, its answer for the packet kept */
	__u8 ct_checked; /* expression: the packet's NAT forms were tried */
	__u32 tuple;     /* expression, PASSED_BY: the addresses and ports it was answered for (tuple_digest) */
};

#define FOLLOWED 1
#define PASSED_BY 2

#define FOLLOW_SLOTS 8192

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FOLLOW_SLOTS);
	__type(key, __u32);
	__type(value, struct follow);
} followed SEC(".maps");

static __always_inline __u32 follow_key(const struct pathtrace_record *r)
{
	return r->l4proto == IPPROTO_TCP ? r->seq : ((__u32)r->ip_id << 16) ^ r->len;
}

static __always_inline struct follow *follow_slot(__u32 key)
{
	__u32 idx = (key * 2654435761u) >> 19; /* 13 bits: FOLLOW_SLOTS */
	return bpf_map_lookup_elem(&followed, &idx);
}

static __always_inline void follow(const struct pathtrace_record *r)
{
	__u32 key = follow_key(r);
	struct follow *f = follow_slot(key);
	if (f) {
		if (f->skb != r->skb || f->key != key)
			f->bytes_sent = 0;
		f->skb = r->skb;
		f->key = key;
		f->proto = r->l4proto;
		f->verdict = FOLLOWED;
	}
}

static __always_inline void unfollow(const struct pathtrace_record *r)
{
	__u32 key = follow_key(r);
	struct follow *f = follow_slot(key);
	if (f && f->skb == r->skb)
		f->skb = 0;
}

/* The slot of a packet that is followed (it matched the filter), or NULL. */
static __always_inline struct follow *followed_slot(const struct pathtrace_record *r)
{
	__u32 key = follow_key(r);
	struct follow *f = follow_slot(key);
	return f && f->skb == r->skb && f->key == key && f->proto == r->l4proto && f->verdict == FOLLOWED ? f : 0;
}

static __always_inline bool is_followed(const struct pathtrace_record *r)
{
	return followed_slot(r) != 0;
}

/* The end of an skb's linear data: what a read from its headers may reach. */
static __always_inline const unsigned char *skb_head_end(const struct sk_buff *skb)
{
	return skb->data + (skb->len - skb->data_len);
}

/* The packet's bytes from its IP header (l3) up to head_end, the end of the skb's linear data. */
static __always_inline void emit_bytes_to(const unsigned char *l3, const unsigned char *head_end, struct pathtrace_record *r)
{
	if (!filter.snaplen)
		return;
	/* Once per packet: its first point (the journey's) is the one user space uses. */
	struct follow *f = followed_slot(r);
	if (f && f->bytes_sent)
		return;
	stamp(r);
	__u32 zero = 0;
	struct pathtrace_bytes *b = bpf_map_lookup_elem(&bytes_scratch, &zero);
	if (!b)
		return;
	long avail = (long)head_end - (long)l3;
	__u32 caplen = filter.snaplen;
	if (avail < caplen)
		caplen = avail > 0 ? avail : 0;
	if (caplen > PT_MAX_SNAPLEN)
		caplen = PT_MAX_SNAPLEN;
	if (caplen == 0 || bpf_probe_read_kernel(b->data, caplen, l3))
		return;
	b->ts_ns = r->ts_ns;
	b->skb = r->skb;
	b->caplen = caplen;
	b->point = r->point;
	__u8 first = b->data[0];
	if ((first >> 4) == 4 && caplen >= 4)
		b->wirelen = ((__u16)b->data[2] << 8) | b->data[3];
	else if ((first >> 4) == 6 && caplen >= 6)
		b->wirelen = (((__u16)b->data[4] << 8) | b->data[5]) + 40;
	else
		b->wirelen = caplen;
	if (bpf_ringbuf_output(&packet_bytes, b, PT_BYTES_HEADER + caplen, BPF_RB_NO_WAKEUP))
		count_lost(PT_LOST_BYTES);
	else if (f)
		f->bytes_sent = 1;
}

static __always_inline void emit_bytes(const struct sk_buff *skb, const unsigned char *l3, struct pathtrace_record *r)
{
	emit_bytes_to(l3, skb_head_end(skb), r);
}

static __always_inline bool port_wanted(__u16 port)
{
	/* The mask looks redundant for 16 bits and clang drops it, but verifiers
	 * before ~6.8 do not bound a byte swap's result: keep it (barrier_var). */
	__u32 idx = port >> 3;
	barrier_var(idx);
	return filter.ports[idx & 0x1fff] & (1 << (port & 7));
}

static __always_inline bool addr_eq(const __u8 *a, const volatile __u8 *b, int n)
{
	for (int i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/* Whether one tuple's ports and addresses pass the user's filter. */
static __always_inline bool endpoints_wanted(__u8 family, const __u8 *saddr, const __u8 *daddr,
					     const __u8 *inner_daddr, __u16 sport, __u16 dport)
{
	if (!filter.any_port && !port_wanted(sport) && !port_wanted(dport))
		return false;
	if (!filter.nhosts)
		return true;
	int n = family == 4 ? 4 : 16;
	for (int i = 0; i < PT_MAX_HOSTS; i++) {
		if (i >= filter.nhosts)
			break;
		if (filter.hosts[i].family != family)
			continue;
		if (addr_eq(saddr, filter.hosts[i].addr, n) || addr_eq(daddr, filter.hosts[i].addr, n) ||
		    (inner_daddr && addr_eq(inner_daddr, filter.hosts[i].addr, n)))
			return true;
	}
	return false;
}

/* The protocol part of the filter. An ICMP error counts as the protocol of
 * the packet it quotes: the port unreachable for a UDP datagram belongs to
 * UDP port 53's story; ICMP carries no ports otherwise. */
static __always_inline bool proto_wanted(const struct pathtrace_record *r)
{
	__u8 l4 = r->inner_proto ? r->inner_proto : r->l4proto;
	__u8 proto = l4 == IPPROTO_TCP ? PT_PROTO_TCP :
		     l4 == IPPROTO_UDP ? PT_PROTO_UDP :
		     (l4 == IPPROTO_ICMP || l4 == IPPROTO_ICMPV6) ? PT_PROTO_ICMP : 0;
	bool icmp = r->l4proto == IPPROTO_ICMP || r->l4proto == IPPROTO_ICMPV6;
	if (!(filter.protos & proto) && !(icmp && (filter.protos & PT_PROTO_ICMP)))
		return false;
	return filter.any_port || !icmp || r->inner_proto;
}

/* The user's filter, on a record whose tuple is filled in. */
static __always_inline bool wanted(struct pathtrace_record *r)
{
	if (filter.netns && r->netns && r->netns != filter.netns)
		return false;
	return proto_wanted(r) &&
	       endpoints_wanted(r->family, r->saddr, r->daddr, r->inner_proto ? r->inner_daddr : 0, r->sport, r->dport);
}

#include "expression.bpf.h"

/* A packet whose conntrack entry, in either direction, matches the filter:
 * a reply to a DNAT'd connection carries the translated tuple until
 * POST_ROUTING restores it. The entry is attached from conntrack's hook on. */
static __always_inline bool conntrack_wanted(unsigned long nfct, const struct pathtrace_record *r)
{
	if (!nfct || !proto_wanted(r) || r->inner_proto)
		return false;
	struct nf_conn *ct = (struct nf_conn *)(nfct & ~7UL);
	struct expr_buf *b = expr_buf();
	if (!b)
		return false;
	struct nf_conntrack_tuple *t = &b->tuple;
	for (int dir = 0; dir < 2; dir++) {
		if (bpf_core_read(t, sizeof(*t), &ct->tuplehash[dir].tuple))
			return false;
		if (t->dst.protonum != r->l4proto)
			return false;
		if (endpoints_wanted(r->family, (const __u8 *)&t->src.u3, (const __u8 *)&t->dst.u3, 0,
				     bpf_ntohs(t->src.u.all), bpf_ntohs(t->dst.u.all)))
			return true;
	}
	return false;
}

/* Set once a matched packet was seen with a tuple that only its conntrack
 * entry matched, i.e. NAT rewrote it. */
bool nat_seen = false;

/* The expression on the packet whose IP header is at l3 (up to end) and, for an ICMP error, on the
 * packet it quotes: the error belongs to the flow it is about, as with --port. */
static __always_inline bool expr_packet(const unsigned char *l3, const unsigned char *end,
					const struct pathtrace_record *r)
{
	if (!expr_fill(l3, end))
		return false;
	if (expr_run())
		return true;
	if (!r->inner_proto)
		return false;
	struct expr_buf *b = expr_buf();
	if (!b)
		return false;
	__u32 ihl = r->family == 4 ? (b->pkt[0] & 0xf) * 4 : 40;
	return expr_fill(l3 + ihl + 8, end) && expr_run();
}

#define IPS_NAT_MASK 0x30 /* IPS_SRC_NAT | IPS_DST_NAT */
#define IP_CT_IS_REPLY 3

/* The expression on the packet as it looks on either side of its connection's NAT: a packet of the
 * original direction is its entry's original tuple before NAT and the reply tuple reversed after it,
 * a reply the other way round. Only for entries that NAT changed (otherwise both are the packet). */
static __always_inline bool expr_conntrack(unsigned long nfct, const unsigned char *l3, const unsigned char *end,
					   const struct pathtrace_record *r)
{
	struct nf_conn *ct = (struct nf_conn *)(nfct & ~7UL);
	if (!ct || !(BPF_CORE_READ(ct, status) & IPS_NAT_MASK) || r->inner_proto)
		return false;
	if (r->l4proto != IPPROTO_TCP && r->l4proto != IPPROTO_UDP)
		return false;
	int own = (nfct & 7) >= IP_CT_IS_REPLY;
	for (int reversed = 0; reversed < 2; reversed++) {
		struct expr_buf *b = expr_buf();
		if (!b || !expr_fill(l3, end))
			return false;
		struct nf_conntrack_tuple *t = &b->tuple;
		if (bpf_core_read(t, sizeof(*t), &ct->tuplehash[reversed ? !own : own].tuple))
			return false;
		__u16 sport = bpf_ntohs(t->src.u.all), dport = bpf_ntohs(t->dst.u.all);
		if (reversed)
			expr_set_tuple(b, r->family, (const __u8 *)&t->dst.u3, (const __u8 *)&t->src.u3, dport, sport);
		else
			expr_set_tuple(b, r->family, (const __u8 *)&t->src.u3, (const __u8 *)&t->dst.u3, sport, dport);
		if (expr_run())
			return true;
	}
	return false;
}

/* The addresses and ports of a record, folded: a PASSED_BY answer holds for the same packet only (an skb
 * freed where nothing unfollows it may come back for another packet whose key is the same, an IPv6
 * datagram of the same length), and a packet NAT rewrote is asked again. */
static __always_inline __u32 tuple_digest(const struct pathtrace_record *r)
{
	const __u32 *s = (const __u32 *)r->saddr, *d = (const __u32 *)r->daddr;
	return s[0] ^ s[1] ^ s[2] ^ s[3] ^ d[0] ^ (d[1] * 31) ^ (d[2] * 131) ^ (d[3] * 8191) ^ ((__u32)r->sport << 16 | r->dport);
}

/* The filter with an expression. The expression runs once per packet, at its first point: the answer
 * is kept in the packet's follow slot, so a later point costs a lookup, and a packet that matched is
 * followed to its end whatever its later points do to it (a TTL decremented, an address translated).
 * A packet that did not match is tried once more on both sides of its NAT, once NAT has set it up.
 * Not inlined: its paths would otherwise multiply those of the program around it for the verifier. */
static __noinline bool expr_packet_wanted(unsigned long nfct, struct pathtrace_record *r,
					       const unsigned char *l3, const unsigned char *end)
{
	__u32 key = follow_key(r);
	struct follow *f = follow_slot(key);
	if (!f)
		return false;
	__u32 tuple = tuple_digest(r);
	if (f->skb != r->skb || f->key != key || f->proto != r->l4proto || !f->verdict ||
	    (f->verdict == PASSED_BY && f->tuple != tuple)) {
		f->skb = r->skb;
		f->key = key;
		f->proto = r->l4proto;
		f->tuple = tuple;
		f->bytes_sent = 0;
		f->ct_checked = 0;
		f->verdict = wanted(r) && expr_packet(l3, end, r) ? FOLLOWED : PASSED_BY;
	}
	if (f->verdict == PASSED_BY && nfct && !f->ct_checked) {
		struct nf_conn *ct = (struct nf_conn *)(nfct & ~7UL);
		if (ct && (BPF_CORE_READ(ct, status) & IPS_NAT_MASK)) {
			f->ct_checked = 1;
			if ((wanted(r) || conntrack_wanted(nfct, r)) && expr_conntrack(nfct, l3, end, r)) {
				f->verdict = FOLLOWED;
				nat_seen = true;
			}
		}
	}
	return f->verdict == FOLLOWED;
}

/* The filter for a packet event whose IP header is at l3 (readable up to end): its own tuple, or its
 * conntrack entry's, or an earlier event of the same packet that matched. */
static __always_inline bool packet_wanted_nfct(unsigned long nfct, struct pathtrace_record *r,
					       const unsigned char *l3, const unsigned char *end)
{
	if (filter.netns && r->netns && r->netns != filter.netns)
		return false;
	if (filter.expression)
		return expr_packet_wanted(nfct, r, l3, end);
	if (wanted(r)) {
		follow(r);
		return true;
	}
	if (conntrack_wanted(nfct, r)) {
		nat_seen = true;
		follow(r);
		return true;
	}
	/* Only NAT changes a matched packet's tuple. Until NAT has been seen, a
	 * miss needs no lookup; after, the lookup is needed also without a
	 * conntrack entry: TCP and UDP drop it before queueing to the socket. */
	return nat_seen && is_followed(r);
}

static __always_inline bool packet_wanted(const struct sk_buff *skb, struct pathtrace_record *r,
					  const unsigned char *l3)
{
	return packet_wanted_nfct(skb->_nfct, r, l3, skb_head_end(skb));
}

/* The headers of a packet, read in one go: IPv4 without options or IPv6, and a TCP header without
 * options or a UDP header right behind. What a packet point looks at first. */
#define PT_HEAD_BYTES 60

/* The cheap answer for most packets at a busy server: TCP or UDP to ports the
 * filter does not want, and nothing that could make the packet wanted later in
 * its path (no conntrack entry to match by, no NAT seen). Looks at the header
 * bytes h before anything is built; true when the packet can be left at once.
 * Anything it is unsure of goes the long way (packet_wanted). */
static __always_inline bool ports_rule_out(const __u8 *h, unsigned long nfct)
{
	if (filter.any_port || nat_seen || nfct)
		return false;
	const __u8 *ports;
	__u8 proto;
	if (h[0] == 0x45) {
		if ((h[6] & 0x1f) || h[7]) /* a fragment after the first: no ports */
			return false;
		proto = h[9];
		ports = h + 20;
	} else if ((h[0] >> 4) == 6) {
		proto = h[6]; /* extension headers go the long way */
		ports = h + 40;
	} else {
		return false;
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return false; /* ICMP errors match by the packet they quote */
	return !port_wanted(((__u16)ports[0] << 8) | ports[1]) && !port_wanted(((__u16)ports[2] << 8) | ports[3]);
}

/* Destination unreachable, time exceeded, parameter problem (and ICMPv6's packet too big). */
static __always_inline bool icmp_is_error(__u8 proto, __u8 type)
{
	if (proto == IPPROTO_ICMP)
		return type == 3 || type == 11 || type == 12;
	return type >= 1 && type <= 4;
}

/* The packet an ICMP error quotes: its protocol, ports and destination, so
 * that the error matches the port filter and joins the flow it is about. */
static __always_inline void parse_quoted(const unsigned char *q, struct pathtrace_record *r)
{
	__u8 first;
	const unsigned char *l4;
	if (bpf_probe_read_kernel(&first, 1, q))
		return;
	if ((first >> 4) == 4) {
		struct iphdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), q))
			return;
		r->inner_proto = ip.protocol;
		__builtin_memcpy(r->inner_daddr, &ip.daddr, 4);
		l4 = q + (first & 0xf) * 4;
	} else if ((first >> 4) == 6) {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), q))
			return;
		r->inner_proto = ip6.nexthdr;
		__builtin_memcpy(r->inner_daddr, &ip6.daddr, 16);
		l4 = q + sizeof(ip6);
	} else {
		return;
	}
	if (r->inner_proto == IPPROTO_TCP || r->inner_proto == IPPROTO_UDP) {
		__be16 ports[2];
		if (bpf_probe_read_kernel(ports, sizeof(ports), l4))
			return;
		r->sport = bpf_ntohs(ports[0]);
		r->dport = bpf_ntohs(ports[1]);
	}
}

/* The common case from the header bytes h (PT_HEAD_BYTES): IPv4 without options or IPv6, and a TCP
 * or UDP header right behind. Returns false when parse_slow must do it piecewise. */
static __always_inline bool parse_fast(const __u8 *h, struct pathtrace_record *r)
{
	const __u8 *l4;
	__u16 l4len;
	if (h[0] == 0x45) {
		const struct iphdr *ip = (const void *)h;
		if (bpf_ntohs(ip->frag_off) & 0x1fff)
			return false;
		r->family = 4;
		r->l4proto = ip->protocol;
		r->ttl = ip->ttl;
		r->ip_id = bpf_ntohs(ip->id);
		__builtin_memcpy(r->saddr, &ip->saddr, 4);
		__builtin_memcpy(r->daddr, &ip->daddr, 4);
		l4 = h + 20;
		l4len = bpf_ntohs(ip->tot_len) - 20;
	} else if ((h[0] >> 4) == 6) {
		const struct ipv6hdr *ip6 = (const void *)h;
		r->family = 6;
		r->l4proto = ip6->nexthdr;
		r->ttl = ip6->hop_limit;
		__builtin_memcpy(r->saddr, &ip6->saddr, 16);
		__builtin_memcpy(r->daddr, &ip6->daddr, 16);
		l4 = h + 40;
		l4len = bpf_ntohs(ip6->payload_len);
	} else {
		return false;
	}
	if (r->l4proto == IPPROTO_TCP) {
		const struct tcphdr *th = (const void *)l4;
		r->sport = bpf_ntohs(th->source);
		r->dport = bpf_ntohs(th->dest);
		r->seq = bpf_ntohl(th->seq);
		r->ack = bpf_ntohl(th->ack_seq);
		r->tcp_flags = l4[13];
		__u16 doff = th->doff * 4;
		r->len = l4len > doff ? l4len - doff : 0;
		return true;
	}
	if (r->l4proto == IPPROTO_UDP) {
		const struct udphdr *uh = (const void *)l4;
		r->sport = bpf_ntohs(uh->source);
		r->dport = bpf_ntohs(uh->dest);
		r->len = l4len > 8 ? l4len - 8 : 0;
		return true;
	}
	return false; /* ICMP and the rest: the long way */
}

/* Reads the IP and transport headers starting at the kernel address nh, piece by piece. */
static __always_inline bool parse_slow(const unsigned char *nh, struct pathtrace_record *r)
{
	__u8 first;
	if (bpf_probe_read_kernel(&first, 1, nh))
		return false;

	const unsigned char *l4;
	__u16 l4len;
	if ((first >> 4) == 4) {
		struct iphdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), nh))
			return false;
		__u32 ihl = (first & 0xf) * 4;
		if (ihl < sizeof(ip))
			return false;
		r->family = 4;
		r->l4proto = ip.protocol;
		r->ttl = ip.ttl;
		r->ip_id = bpf_ntohs(ip.id);
		__builtin_memcpy(r->saddr, &ip.saddr, 4);
		__builtin_memcpy(r->daddr, &ip.daddr, 4);
		l4 = nh + ihl;
		l4len = bpf_ntohs(ip.tot_len) - ihl;
		/* A non-first fragment carries no transport header. */
		if (bpf_ntohs(ip.frag_off) & 0x1fff)
			return true;
	} else if ((first >> 4) == 6) {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), nh))
			return false;
		r->family = 6;
		r->l4proto = ip6.nexthdr; /* extension headers are not walked */
		r->ttl = ip6.hop_limit;
		__builtin_memcpy(r->saddr, &ip6.saddr, 16);
		__builtin_memcpy(r->daddr, &ip6.daddr, 16);
		l4 = nh + sizeof(ip6);
		l4len = bpf_ntohs(ip6.payload_len);
	} else {
		return false;
	}

	if (r->l4proto == IPPROTO_TCP) {
		struct tcphdr th;
		if (bpf_probe_read_kernel(&th, sizeof(th), l4))
			return false;
		r->sport = bpf_ntohs(th.source);
		r->dport = bpf_ntohs(th.dest);
		r->seq = bpf_ntohl(th.seq);
		r->ack = bpf_ntohl(th.ack_seq);
		__u8 flags;
		bpf_probe_read_kernel(&flags, 1, l4 + 13);
		r->tcp_flags = flags;
		__u16 doff = th.doff * 4;
		r->len = l4len > doff ? l4len - doff : 0;
	} else if (r->l4proto == IPPROTO_UDP) {
		struct udphdr uh;
		if (bpf_probe_read_kernel(&uh, sizeof(uh), l4))
			return false;
		r->sport = bpf_ntohs(uh.source);
		r->dport = bpf_ntohs(uh.dest);
		r->len = l4len > 8 ? l4len - 8 : 0;
	} else if (r->l4proto == IPPROTO_ICMP || r->l4proto == IPPROTO_ICMPV6) {
		__u8 tc[2];
		if (bpf_probe_read_kernel(tc, 2, l4))
			return false;
		r->icmp_type = tc[0];
		r->icmp_code = tc[1];
		r->len = l4len;
		if (icmp_is_error(r->l4proto, tc[0]))
			parse_quoted(l4 + 8, r);
	}
	return true;
}

/* Reads the IP and transport headers starting at the kernel address nh. */
static __always_inline bool parse_ip(const unsigned char *nh, struct pathtrace_record *r)
{
	__u8 h[PT_HEAD_BYTES];
	if (!bpf_probe_read_kernel(h, sizeof(h), nh) && parse_fast(h, r))
		return true;
	return parse_slow(nh, r);
}

static __always_inline __u32 dev_netns(const struct net_device *dev)
{
	return dev->nd_net.net->ns.inum;
}

static __always_inline __u32 sock_netns(const struct sock *sk)
{
	return sk->__sk_common.skc_net.net->ns.inum;
}

/* The namespace an skb belongs to: its socket's, else its device's. The
 * socket goes first: once queued on a UDP socket, skb->dev is scratch space. */
/* The namespace a packet is in now: its device's, else (sent, before routing gave it one) its socket's.
 * The device comes first: a packet a veth carried into another namespace keeps its sender's socket until
 * that namespace's IP layer orphans it, and a drop there (a netdev ingress rule) is not the sender's. */
static __always_inline __u32 skb_netns(const struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	if (dev)
		return dev_netns(dev);
	struct sock *sk = skb->sk;
	if (sk)
		return sock_netns(sk);
	return 0;
}

static __always_inline bool skb_is_ip(const struct sk_buff *skb)
{
	__u16 proto = bpf_ntohs(skb->protocol);
	return proto == ETH_P_IP || proto == ETH_P_IPV6;
}

/* The IP header from the skb's network header offset (set once IP has seen it), or NULL. */
static __always_inline const unsigned char *skb_nh(const struct sk_buff *skb)
{
	__u16 nh = skb->network_header;
	return nh == (__u16)~0U ? 0 : skb->head + nh;
}

static __always_inline bool parse_skb_nh(const struct sk_buff *skb, struct pathtrace_record *r)
{
	const unsigned char *nh = skb_nh(skb);
	return nh && parse_ip(nh, r);
}

static __always_inline void init(struct pathtrace_record *r, __u16 point, const struct sk_buff *skb)
{
	__builtin_memset(r, 0, sizeof(*r));
	r->point = point;
	r->hook = PT_HOOK_NONE;
	r->skb = (__u64)skb;
}

/* The record of a packet event at nh, in netns, when the user's filter wants the packet: false at the
 * first sign it does not (its ports, before anything is built). */
static __always_inline bool packet_record(struct pathtrace_record *r, __u16 point, const struct sk_buff *skb,
					  const unsigned char *nh, __u32 netns)
{
	if (!nh)
		return false;
	/* One read of the headers serves the early answer and the record (a packet that
	 * ends near a page's end, or anything unusual, is read piecewise). */
	__u8 h[PT_HEAD_BYTES];
	bool head = !bpf_probe_read_kernel(h, sizeof(h), nh);
	if (head && ports_rule_out(h, skb->_nfct))
		return false;
	init(r, point, skb);
	r->netns = netns;
	if (!(head && parse_fast(h, r)) && !parse_slow(nh, r))
		return false;
	return packet_wanted(skb, r, nh);
}

/* ---- netfilter hooks ---------------------------------------------------- */

static __always_inline int nf_probe(struct bpf_nf_ctx *ctx, __u8 slot)
{
	const struct nf_hook_state *st = ctx->state;
	struct sk_buff *skb = ctx->skb;
	struct pathtrace_record r;

	__u32 netns = st->net->ns.inum;
	if (filter.netns && netns != filter.netns)
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
	if (slot == PT_NF_SLOT_ENTRY && r.hook == 3 /* NF_INET_LOCAL_OUT */)
		emit_bytes(skb, skb->head + skb->network_header, &r);
	emit(&r);
	return NF_ACCEPT;
}

#define NF_SLOT(n) \
	SEC("netfilter") int nf_probe##n(struct bpf_nf_ctx *ctx) { return nf_probe(ctx, n); }
NF_SLOT(0) NF_SLOT(1) NF_SLOT(2) NF_SLOT(3) NF_SLOT(4) NF_SLOT(5) NF_SLOT(6) NF_SLOT(7)

/* Kernels without netfilter links (< 6.4): the same records from trampolines. */
#include "netfilter_trampolines.bpf.h"

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
	if (filter.netns && netns != filter.netns)
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
	if (filter.netns && netns != filter.netns)
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
	if (filter.netns && netns != filter.netns)
		return 0;
	if (!packet_record(&r, PT_POINT_SKB_COPY_DATAGRAM, skb, skb_nh(skb), netns))
		return 0;
	r.aux = len;
	r.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(r.comm, sizeof(r.comm));
	emit(&r);
	return 0;
}

/* ---- end of life -------------------------------------------------------- */

/* nft_chains: whether a drop inside nft_do_chain may be freed here (kernels with drop reasons). */
static __always_inline void on_free(__u16 point, struct sk_buff *skb, void *location, __u32 reason, bool nft_chains)
{
	struct pathtrace_record r;
	if (!skb_is_ip(skb))
		return;
	__u32 netns = skb_netns(skb);
	if (filter.netns && netns && netns != filter.netns)
		return;
	if (!packet_record(&r, point, skb, skb_nh(skb), netns))
		return;
	unfollow(&r);
	r.location = (__u64)location;
	r.reason = reason;
	struct net_device *dev = skb->dev;
	if (dev)
		r.ifindex = dev->ifindex;
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
	if (filter.netns && sk->skc_net.net->ns.inum != filter.netns)
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
	r.tcp_flags = 0x12; /* SYN ACK */
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
	if (ret <= 0 || (flags & 2 /* MSG_PEEK */) || sk->sk_protocol != IPPROTO_UDP)
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
