// SPDX-License-Identifier: GPL-2.0
/*
 * pathtrace agent: drops counted in the kernel by namespace, device, hook, reason, freeing function and protocol
 * (bpf/drop_counts.h), nothing sent per packet; those of --port's ports or a tcpdump expression only, if given. A
 * netfilter program at the entry of each hook notes, per CPU, which packet is in which hook; a free by one of
 * netfilter's own freeing functions of that packet is that hook's drop.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "drop_counts.h"
#include "kernel.bpf.h"
#include "expression.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* [start, end) of each netfilter freeing function, from kallsyms (0, 0 where absent). A free elsewhere is not the
 * hook's, even of the packet that passed a hook on this CPU just before (accepted at LOCAL_IN, freed by TCP).
 * Not read-only: the addon fills them in again when a module (nf_tables, ip_tables) loads later. */
__u64 nf_freer_start[PT_AGENT_NF_FREERS] = {};
__u64 nf_freer_end[PT_AGENT_NF_FREERS] = {};

/* --port: only drops of TCP and UDP to or from these ports (a bit per port); any_port: all drops. */
const volatile __u8 any_port = 1;
const volatile __u8 ports[8192] = {};
/* --label-ports: each drop counted by the port of the list it has. */
const volatile __u8 label_ports = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, PT_AGENT_MAX_KEYS);
	__type(key, struct pathtrace_drop_key);
	__type(value, struct pathtrace_drop_count);
} drops SEC(".maps");

/* Drops not counted by key because the map was full: counted here, so that the total stays true. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pathtrace_drop_count);
} unkeyed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PT_AGENT_SAMPLE_RING);
} samples SEC(".maps");

struct in_hook {
	__u64 skb;
	__u32 hook;
};

/* The packet in a hook on this CPU, and which hook (a hook runs to its verdict without leaving the CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct in_hook);
} in_hook SEC(".maps");

SEC("netfilter")
int agent_nf_entry(struct bpf_nf_ctx *ctx)
{
	__u32 zero = 0;
	struct in_hook *h = bpf_map_lookup_elem(&in_hook, &zero);
	if (h) {
		h->skb = (__u64)ctx->skb;
		h->hook = ctx->state->hook;
	}
	return NF_ACCEPT;
}

static __always_inline bool freed_by_netfilter(__u64 location)
{
	for (int i = 0; i < PT_AGENT_NF_FREERS; i++)
		if (location >= nf_freer_start[i] && location < nf_freer_end[i])
			return true;
	return false;
}

/* The TCP or UDP ports of a packet whose IP header is at nh; false for other protocols. */
static __always_inline bool transport_ports(const struct pathtrace_drop_key *k, const unsigned char *nh, __u16 *sport,
					    __u16 *dport)
{
	if (k->proto != IPPROTO_TCP && k->proto != IPPROTO_UDP)
		return false;
	const unsigned char *th = nh + sizeof(struct ipv6hdr);
	if (k->family == 4) {
		__u8 vihl = 0;
		bpf_probe_read_kernel(&vihl, 1, nh);
		th = nh + (vihl & 0xf) * 4;
	}
	__be16 p[2] = {};
	bpf_probe_read_kernel(p, sizeof(p), th);
	*sport = bpf_ntohs(p[0]);
	*dport = bpf_ntohs(p[1]);
	return true;
}

static __always_inline bool port_wanted(__u16 port)
{
	return ports[port >> 3] & (1 << (port & 7));
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PT_AGENT_LOST_KINDS);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* The first drop of a key, with its addresses and ports (ring full: the count alone, as for any other). */
static __always_inline void sample(const struct pathtrace_drop_key *k, const struct sk_buff *skb,
				   const unsigned char *nh)
{
	struct pathtrace_drop_sample *s = bpf_ringbuf_reserve(&samples, sizeof(*s), 0);
	if (!s) {
		count_in(&lost, PT_AGENT_SAMPLES_LOST);
		return;
	}
	__builtin_memset(s, 0, sizeof(*s));
	s->key = *k;
	s->len = skb->len;
	if (k->family == 4) {
		bpf_probe_read_kernel(s->saddr, 4, nh + offsetof(struct iphdr, saddr));
		bpf_probe_read_kernel(s->daddr, 4, nh + offsetof(struct iphdr, daddr));
	} else {
		bpf_probe_read_kernel(s->saddr, 16, nh + offsetof(struct ipv6hdr, saddr));
		bpf_probe_read_kernel(s->daddr, 16, nh + offsetof(struct ipv6hdr, daddr));
	}
	transport_ports(k, nh, &s->sport, &s->dport);
	bpf_ringbuf_submit(s, 0);
}

static __always_inline void add(struct pathtrace_drop_count *c, __u32 len)
{
	c->packets++;
	c->bytes += len;
}

static __always_inline void count(struct sk_buff *skb, void *location, __u32 reason)
{
	__u16 proto = bpf_ntohs(skb->protocol);
	const unsigned char *nh = skb_nh(skb);
	struct pathtrace_drop_key k = {};
	if (!nh)
		return;
	if (proto == ETH_P_IP) {
		k.family = 4;
		bpf_probe_read_kernel(&k.proto, 1, nh + offsetof(struct iphdr, protocol));
	} else if (proto == ETH_P_IPV6) {
		k.family = 6;
		bpf_probe_read_kernel(&k.proto, 1, nh + offsetof(struct ipv6hdr, nexthdr));
	} else {
		return;
	}
	if (!any_port) {
		__u16 sport, dport;
		if (!transport_ports(&k, nh, &sport, &dport) || !(port_wanted(sport) || port_wanted(dport)))
			return;
		if (label_ports)
			k.port = port_wanted(dport) ? dport : sport;
	}
	/* A tcpdump expression (the trace's interpreter, expression.bpf.h): run on drops only. */
	if (expr.len && !(expr_fill(nh, skb_head_end(skb)) && expr_run()))
		return;
	k.location = (__u64)location;
	k.reason = reason;
	k.netns = skb_netns(skb);
	struct net_device *dev = skb->dev;
	if (dev)
		k.ifindex = dev->ifindex;
	k.hook = PT_HOOK_NONE;
	__u32 zero = 0;
	struct in_hook *h = bpf_map_lookup_elem(&in_hook, &zero);
	if (h && h->skb == (__u64)skb && freed_by_netfilter(k.location))
		k.hook = h->hook;

	struct pathtrace_drop_count *c = bpf_map_lookup_elem(&drops, &k);
	if (c) {
		add(c, skb->len);
		return;
	}
	struct pathtrace_drop_count first = {1, skb->len};
	if (bpf_map_update_elem(&drops, &k, &first, BPF_NOEXIST) == 0) {
		sample(&k, skb, nh);
		return;
	}
	c = bpf_map_lookup_elem(&drops, &k); /* another CPU's first of the same key came between */
	if (!c)
		c = bpf_map_lookup_elem(&unkeyed, &zero);
	if (c)
		add(c, skb->len);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(agent_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	count(skb, location, reason);
	return 0;
}

/* Before 5.17 kfree_skb has no reason: the addon loads one of the two, by the tracepoint's arity. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(agent_kfree_skb_noreason, struct sk_buff *skb, void *location)
{
	count(skb, location, PT_REASON_NONE);
	return 0;
}
