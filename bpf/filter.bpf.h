/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The user's filter, set in .rodata before load (struct pathtrace_filter): the namespace, protocols, ports
 * and hosts, the tcpdump expression (expression.bpf.h), and the follow table that keeps a matched packet
 * wanted at its later points when NAT has rewritten its tuple. ports_rule_out reads the header bytes parse_fast
 * (parse.bpf.h) reads.
 */
#ifndef PATHTRACE_FILTER_BPF_H
#define PATHTRACE_FILTER_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "record.h"
#include "kernel.bpf.h"
#include "parse.bpf.h"
#include "output.bpf.h"
#include "expression.bpf.h"

const volatile struct pathtrace_filter filter = {};

/* ---- the tuple: namespace, protocol, ports, hosts ----------------------- */

/* --netns: whether netns, a namespace's inode number, is not the namespace asked for. */
static __always_inline bool netns_unwanted(__u32 netns)
{
	return filter.netns && netns != filter.netns;
}

/* The same for a record, whose namespace may be 0, not known (a packet with neither device nor socket): let
 * through. */
static __always_inline bool record_netns_unwanted(const struct pathtrace_record *r)
{
	return filter.netns && r->netns && r->netns != filter.netns;
}

static __always_inline bool port_wanted(__u16 port)
{
	/* The mask looks redundant for 16 bits and clang drops it, but verifiers
	 * before ~6.8 do not bound a byte swap's result: keep it (barrier_var). */
	__u32 idx = port >> 3;
	barrier_var(idx);
	return filter.ports[idx & (sizeof(filter.ports) - 1)] & (1 << (port & 7));
}

static __always_inline bool addr_eq(const __u8 *a, const volatile __u8 *b, int n)
{
	for (int i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/* Whether one tuple's ports and addresses pass the user's filter; with inner, also the destination of the packet an
 * ICMP error quotes. inner_daddr is always a readable address, inner or not: the 6.1 verifier loses track of a
 * pointer that may be NULL across the loop below ("invalid mem access 'scalar'"). */
static __always_inline bool endpoints_wanted(__u8 family, const __u8 *saddr, const __u8 *daddr, const __u8 *inner_daddr,
					     bool inner, __u16 sport, __u16 dport)
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
		    (inner && addr_eq(inner_daddr, filter.hosts[i].addr, n)))
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
	__u8 proto = l4 == IPPROTO_TCP				    ? PT_PROTO_TCP
		     : l4 == IPPROTO_UDP			    ? PT_PROTO_UDP
		     : (l4 == IPPROTO_ICMP || l4 == IPPROTO_ICMPV6) ? PT_PROTO_ICMP
								    : 0;
	bool icmp = r->l4proto == IPPROTO_ICMP || r->l4proto == IPPROTO_ICMPV6;
	if (!(filter.protos & proto) && !(icmp && (filter.protos & PT_PROTO_ICMP)))
		return false;
	return filter.any_port || !icmp || r->inner_proto;
}

/* The user's filter, on a record whose tuple is filled in. */
static __always_inline bool wanted(struct pathtrace_record *r)
{
	if (record_netns_unwanted(r))
		return false;
	return proto_wanted(r) &&
	       endpoints_wanted(r->family, r->saddr, r->daddr, r->inner_daddr, r->inner_proto != 0, r->sport, r->dport);
}

/* ---- following a packet whose tuple NAT rewrote ------------------------- */

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
	__u8 verdict;	 /* FOLLOWED; with an expression also PASSED_BY, its answer for the packet kept */
	__u8 ct_checked; /* expression: the packet's NAT forms were tried */
	__u32 tuple;	 /* expression, PASSED_BY: the addresses and ports it was answered for (tuple_digest) */
};

#define FOLLOWED  1
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

/* ---- through NAT, and the expression ------------------------------------ */

/* A packet whose conntrack entry, in either direction, matches the filter:
 * a reply to a DNAT'd connection carries the translated tuple until
 * POST_ROUTING restores it. The entry is attached from conntrack's hook on. */
static __always_inline bool conntrack_wanted(unsigned long nfct, const struct pathtrace_record *r)
{
	if (!nfct || !proto_wanted(r) || r->inner_proto)
		return false;
	struct nf_conn *ct = nfct_conn(nfct);
	struct expr_buf *b = expr_buf();
	if (!b)
		return false;
	struct nf_conntrack_tuple *t = &b->tuple;
	for (int dir = 0; dir < 2; dir++) {
		if (bpf_core_read(t, sizeof(*t), &ct->tuplehash[dir].tuple))
			return false;
		if (t->dst.protonum != r->l4proto)
			return false;
		if (endpoints_wanted(r->family, (const __u8 *)&t->src.u3, (const __u8 *)&t->dst.u3,
				     (const __u8 *)&t->dst.u3, false, bpf_ntohs(t->src.u.all), bpf_ntohs(t->dst.u.all)))
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
	__u32 ihl = r->family == 4 ? (b->pkt[0] & 0xf) * 4 : sizeof(struct ipv6hdr);
	return expr_fill(l3 + ihl + sizeof(struct icmphdr), end) && expr_run();
}

/* The expression on the packet as it looks on either side of its connection's NAT: a packet of the
 * original direction is its entry's original tuple before NAT and the reply tuple reversed after it,
 * a reply the other way round. Only for entries that NAT changed (otherwise both are the packet). */
static __always_inline bool expr_conntrack(unsigned long nfct, const unsigned char *l3, const unsigned char *end,
					   const struct pathtrace_record *r)
{
	struct nf_conn *ct = nfct_conn(nfct);
	if (!ct || !(BPF_CORE_READ(ct, status) & IPS_NAT_MASK) || r->inner_proto)
		return false;
	if (r->l4proto != IPPROTO_TCP && r->l4proto != IPPROTO_UDP)
		return false;
	int own = (nfct & NFCT_INFOMASK) >= IP_CT_IS_REPLY;
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
	return s[0] ^ s[1] ^ s[2] ^ s[3] ^ d[0] ^ (d[1] * 31) ^ (d[2] * 131) ^ (d[3] * 8191) ^
	       ((__u32)r->sport << 16 | r->dport);
}

/* The filter with an expression. The expression runs once per packet, at its first point: the answer
 * is kept in the packet's follow slot, so a later point costs a lookup, and a packet that matched is
 * followed to its end whatever its later points do to it (a TTL decremented, an address translated).
 * A packet that did not match is tried once more on both sides of its NAT, once NAT has set it up.
 * Not inlined: its paths would otherwise multiply those of the program around it for the verifier. */
static __noinline bool expr_packet_wanted(unsigned long nfct, struct pathtrace_record *r, const unsigned char *l3,
					  const unsigned char *end)
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
		struct nf_conn *ct = nfct_conn(nfct);
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

/* ---- a packet event ----------------------------------------------------- */

/* The filter for a packet event whose IP header is at l3 (readable up to end): its own tuple, or its
 * conntrack entry's, or an earlier event of the same packet that matched. */
static __always_inline bool packet_wanted_nfct(unsigned long nfct, struct pathtrace_record *r, const unsigned char *l3,
					       const unsigned char *end)
{
	if (record_netns_unwanted(r))
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
	if (h[0] == IPV4_NO_OPTIONS) {
		if ((h[6] & (IP_OFFSET >> 8)) || h[7]) /* a fragment after the first: no ports */
			return false;
		proto = h[9];
		ports = h + sizeof(struct iphdr);
	} else if ((h[0] >> 4) == 6) {
		proto = h[6]; /* extension headers go the long way */
		ports = h + sizeof(struct ipv6hdr);
	} else {
		return false;
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return false; /* ICMP errors match by the packet they quote */
	return !port_wanted(((__u16)ports[0] << 8) | ports[1]) && !port_wanted(((__u16)ports[2] << 8) | ports[3]);
}

/* The record of a packet event whose IP header is at nh (readable up to end; skb: its address, 0 for an XDP
 * buffer; nfct: its conntrack entry, 0 for none), in netns, when the user's filter wants the packet: false at
 * the first sign it does not (its ports, before anything is built). Needs init (output.bpf.h). */
static __always_inline bool packet_record_at(struct pathtrace_record *r, __u16 point, const struct sk_buff *skb,
					     const unsigned char *nh, const unsigned char *end, unsigned long nfct,
					     __u32 netns)
{
	/* One read of the headers serves the early answer and the record (a packet that
	 * ends near a page's end, or anything unusual, is read piecewise). */
	__u8 h[PT_HEAD_BYTES];
	bool head = !bpf_probe_read_kernel(h, sizeof(h), nh);
	if (head && ports_rule_out(h, nfct))
		return false;
	init(r, point, skb);
	r->netns = netns;
	if (!(head && parse_fast(h, r)) && !parse_slow(nh, r))
		return false;
	return packet_wanted_nfct(nfct, r, nh, end);
}

#endif
