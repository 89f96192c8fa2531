/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A packet's headers into the record: IPv4 or IPv6, then TCP, UDP or ICMP (and the packet an ICMP error
 * quotes). parse_fast reads the common case from one read of the first PT_HEAD_BYTES; parse_slow reads the
 * rest piecewise.
 */
#ifndef PATHTRACE_PARSE_BPF_H
#define PATHTRACE_PARSE_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "record.h"
#include "kernel.bpf.h"

/* The headers of a packet, read in one go: IPv4 without options or IPv6, and a TCP header without
 * options or a UDP header right behind. What a packet point looks at first. */
#define PT_HEAD_BYTES	60
#define IPV4_NO_OPTIONS 0x45 /* the first byte of an IPv4 header of 5 words */

/* Destination unreachable, time exceeded, parameter problem (and ICMPv6's packet too big). */
static __always_inline bool icmp_is_error(__u8 proto, __u8 type)
{
	if (proto == IPPROTO_ICMP)
		return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
	return type >= ICMPV6_DEST_UNREACH && type <= ICMPV6_PARAMPROB;
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

/* The record's fields from one header, for both ways of reading it: a header in memory the program may read
 * directly (the packet's first bytes, or a header read piecewise, on the stack). l4len: the length of the
 * transport header and its payload. */
static __always_inline void ipv4_fields(const struct iphdr *ip, struct pathtrace_record *r)
{
	r->family = 4;
	r->l4proto = ip->protocol;
	r->ttl = ip->ttl;
	r->ip_id = bpf_ntohs(ip->id);
	__builtin_memcpy(r->saddr, &ip->saddr, 4);
	__builtin_memcpy(r->daddr, &ip->daddr, 4);
}

static __always_inline void ipv6_fields(const struct ipv6hdr *ip6, struct pathtrace_record *r)
{
	r->family = 6;
	r->l4proto = ip6->nexthdr; /* extension headers are not walked */
	r->ttl = ip6->hop_limit;
	__builtin_memcpy(r->saddr, &ip6->saddr, 16);
	__builtin_memcpy(r->daddr, &ip6->daddr, 16);
}

static __always_inline void tcp_fields(const struct tcphdr *th, __u16 l4len, struct pathtrace_record *r)
{
	r->sport = bpf_ntohs(th->source);
	r->dport = bpf_ntohs(th->dest);
	r->seq = bpf_ntohl(th->seq);
	r->ack = bpf_ntohl(th->ack_seq);
	r->tcp_flags = tcp_flag_byte(th);
	__u16 doff = th->doff * 4;
	r->len = l4len > doff ? l4len - doff : 0;
}

static __always_inline void udp_fields(const struct udphdr *uh, __u16 l4len, struct pathtrace_record *r)
{
	r->sport = bpf_ntohs(uh->source);
	r->dport = bpf_ntohs(uh->dest);
	r->len = l4len > sizeof(struct udphdr) ? l4len - sizeof(struct udphdr) : 0;
}

/* The common case from the header bytes h (PT_HEAD_BYTES): IPv4 without options or IPv6, and a TCP
 * or UDP header right behind. Returns false when parse_slow must do it piecewise. */
static __always_inline bool parse_fast(const __u8 *h, struct pathtrace_record *r)
{
	const __u8 *l4;
	__u16 l4len;
	if (h[0] == IPV4_NO_OPTIONS) {
		const struct iphdr *ip = (const void *)h;
		if (bpf_ntohs(ip->frag_off) & IP_OFFSET)
			return false;
		ipv4_fields(ip, r);
		l4 = h + sizeof(struct iphdr);
		l4len = bpf_ntohs(ip->tot_len) - sizeof(struct iphdr);
	} else if ((h[0] >> 4) == 6) {
		const struct ipv6hdr *ip6 = (const void *)h;
		ipv6_fields(ip6, r);
		l4 = h + sizeof(struct ipv6hdr);
		l4len = bpf_ntohs(ip6->payload_len);
	} else {
		return false;
	}
	if (r->l4proto == IPPROTO_TCP) {
		tcp_fields((const void *)l4, l4len, r);
		return true;
	}
	if (r->l4proto == IPPROTO_UDP) {
		udp_fields((const void *)l4, l4len, r);
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
		ipv4_fields(&ip, r);
		l4 = nh + ihl;
		l4len = bpf_ntohs(ip.tot_len) - ihl;
		/* A non-first fragment carries no transport header. */
		if (bpf_ntohs(ip.frag_off) & IP_OFFSET)
			return true;
	} else if ((first >> 4) == 6) {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), nh))
			return false;
		ipv6_fields(&ip6, r);
		l4 = nh + sizeof(ip6);
		l4len = bpf_ntohs(ip6.payload_len);
	} else {
		return false;
	}

	if (r->l4proto == IPPROTO_TCP) {
		struct tcphdr th;
		if (bpf_probe_read_kernel(&th, sizeof(th), l4))
			return false;
		tcp_fields(&th, l4len, r);
	} else if (r->l4proto == IPPROTO_UDP) {
		struct udphdr uh;
		if (bpf_probe_read_kernel(&uh, sizeof(uh), l4))
			return false;
		udp_fields(&uh, l4len, r);
	} else if (r->l4proto == IPPROTO_ICMP || r->l4proto == IPPROTO_ICMPV6) {
		/* Type, code, checksum and the rest of the header, where frag needed and too big carry the MTU. */
		__u8 ih[sizeof(struct icmphdr)]; /* ICMPv6's header is as long */
		if (bpf_probe_read_kernel(ih, sizeof(ih), l4))
			return false;
		r->icmp_type = ih[0];
		r->icmp_code = ih[1];
		r->seq = ((__u32)ih[4] << 24) | ((__u32)ih[5] << 16) | ((__u32)ih[6] << 8) | ih[7];
		r->len = l4len;
		if (icmp_is_error(r->l4proto, ih[0]))
			parse_quoted(l4 + sizeof(struct icmphdr), r);
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

static __always_inline bool parse_skb_nh(const struct sk_buff *skb, struct pathtrace_record *r)
{
	const unsigned char *nh = skb_nh(skb);
	return nh && parse_ip(nh, r);
}

#endif
