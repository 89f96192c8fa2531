/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Netfilter without BPF netfilter links (Linux < 6.4), included by
 * pathtrace.bpf.c. The same records as the link probes, from trampolines:
 *
 * - nf_hook_slow(skb, state, entries, index) runs a hook's functions for one
 *   packet: its entry is the hook's entry probe; returning 1 (every function
 *   accepted) its exit probe. A drop returns -EPERM and frees the packet
 *   there, so no exit record: the same picture as the link brackets. A hook
 *   with no function registered in a namespace is never entered.
 * - nft_do_chain(pkt, chain) and ipt_do_table / ip6t_do_table evaluate one
 *   base chain (jumps stay inside); a drop verdict from one of them names the
 *   table and the chain's priority (PT_POINT_NF_CHAIN). They live in modules:
 *   the addon loads them only where the module's BTF has them (5.11+).
 *
 * Where trampolines are refused, kprobes and kretprobes on the same functions
 * give the same records (the kretprobe finds its call's arguments on a stack).
 *
 * Kernel pointers here are read with CO-RE reads, not loads: the structures
 * differ between the kernels pathtrace runs on, and the reads work the same
 * in every program type.
 */
#ifndef PATHTRACE_NETFILTER_TRAMPOLINES_H
#define PATHTRACE_NETFILTER_TRAMPOLINES_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "record.h"
#include "kernel.bpf.h"
#include "parse.bpf.h"
#include "output.bpf.h"
#include "filter.bpf.h"
#include "bytes.bpf.h"

/* Set by the addon from the kernel's BTF: ipt_do_table and ip6t_do_table take
 * (priv, skb, state) since 5.16, (skb, state, table) before. */
const volatile bool xt_table_first = true;

static __always_inline __u32 skb_netns_core(const struct sk_buff *skb)
{
	struct sock *sk = BPF_CORE_READ(skb, sk);
	if (sk)
		return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	return dev ? BPF_CORE_READ(dev, nd_net.net, ns.inum) : 0;
}

/* skb_head_end() with CO-RE reads (kprobes get plain pointers). */
static __always_inline const unsigned char *skb_head_end_core(const struct sk_buff *skb)
{
	return BPF_CORE_READ(skb, data) + (BPF_CORE_READ(skb, len) - BPF_CORE_READ(skb, data_len));
}

/* Headers and the user's filter, with CO-RE reads of the skb. */
static __always_inline bool skb_wanted_core(const struct sk_buff *skb, struct pathtrace_record *r)
{
	if (record_netns_unwanted(r))
		return false;
	__u16 nh = BPF_CORE_READ(skb, network_header);
	if (nh == (__u16)~0U)
		return false;
	unsigned char *l3 = BPF_CORE_READ(skb, head) + nh;
	return parse_ip(l3, r) && packet_wanted_nfct(BPF_CORE_READ(skb, _nfct), r, l3, skb_head_end_core(skb));
}

/* --write: a packet's bytes at its LOCAL_OUT entry, as the link probe sends them (a packet that dies there
 * reaches no device point). */
static __always_inline void emit_bytes_core(const struct sk_buff *skb, struct pathtrace_record *r)
{
	emit_bytes_to(BPF_CORE_READ(skb, head) + BPF_CORE_READ(skb, network_header), skb_head_end_core(skb), r);
}

static __always_inline void nf_hook_record(struct sk_buff *skb, const struct nf_hook_state *st, __u8 slot)
{
	__u8 pf = BPF_CORE_READ(st, pf);
	if (pf != NFPROTO_IPV4 && pf != NFPROTO_IPV6)
		return; /* bridge, arp, netdev: not traced (as with links) */
	struct pathtrace_record r;
	init(&r, PT_POINT_NETFILTER, skb);
	r.probe = slot;
	/* hook is an unsigned int before 5.14 and a u8 since: its low byte either way (little-endian). */
	r.hook = BPF_CORE_READ(st, hook);
	r.netns = BPF_CORE_READ(st, net, ns.inum);
	if (!skb_wanted_core(skb, &r))
		return;
	struct net_device *in = BPF_CORE_READ(st, in), *out = BPF_CORE_READ(st, out);
	if (in)
		r.ifindex = BPF_CORE_READ(in, ifindex);
	if (out)
		r.ifindex_out = BPF_CORE_READ(out, ifindex);
	if (slot == PT_NF_SLOT_ENTRY && r.hook == NF_INET_LOCAL_OUT)
		emit_bytes_core(skb, &r);
	emit(&r);
}

SEC("fentry/nf_hook_slow")
int BPF_PROG(nf_hook_slow_entry, struct sk_buff *skb, const struct nf_hook_state *state)
{
	nf_hook_record(skb, state, PT_NF_SLOT_ENTRY);
	return 0;
}

SEC("fexit/nf_hook_slow")
int BPF_PROG(nf_hook_slow_exit, struct sk_buff *skb, const struct nf_hook_state *state, const struct nf_hook_entries *e,
	     unsigned int s, int ret)
{
	if (ret == 1) /* accepted; 0 is stolen or queued, < 0 dropped (and freed) */
		nf_hook_record(skb, state, PT_NF_SLOT_EXIT);
	return 0;
}

/* The record of a base chain (or legacy table) that returned a drop verdict, r holding the packet's tuple. */
static __always_inline void nf_chain_emit(struct pathtrace_record *r, __u8 hook, int priority, const char *table,
					  __u8 kind)
{
	r->point = PT_POINT_NF_CHAIN;
	r->probe = kind;
	r->hook = hook;
	r->aux = priority;
	r->reason = NF_DROP;
	bpf_probe_read_kernel_str(r->comm, sizeof(r->comm), table);
	emit(r);
}

/* A base chain (or legacy table) returned a drop verdict for skb. */
static __always_inline void nf_chain_dropped(struct sk_buff *skb, __u8 hook, int priority, const char *table, __u8 kind)
{
	struct pathtrace_record r;
	init(&r, PT_POINT_NF_CHAIN, skb);
	r.netns = skb_netns_core(skb);
	if (skb_wanted_core(skb, &r))
		nf_chain_emit(&r, hook, priority, table, kind);
}

/* The packet and chain nft_do_chain is evaluating on this CPU: since 6.11 a drop frees the packet inside
 * nft_do_chain (which then returns NF_STOLEN), and kfree_skb finds its chain here (nft_chain_freeing). */
struct nft_active {
	__u64 skb;
	__u64 chain;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nft_active);
} nft_active SEC(".maps");

/* Set by the addon when a program marks nft_do_chain's evaluations (nft_active is kept). */
const volatile bool nft_active_kept = false;

static __always_inline void nft_mark(__u64 skb, __u64 chain)
{
	__u32 zero = 0;
	struct nft_active *a = bpf_map_lookup_elem(&nft_active, &zero);
	if (a) {
		a->skb = skb;
		a->chain = chain;
	}
}

/* The base chain behind priv (struct nft_chain of a struct nft_base_chain), or NULL when not an IP family's. */
static __always_inline const struct nft_base_chain *nft_ip_base_chain(const void *priv)
{
	const struct nft_base_chain *base = priv - bpf_core_field_offset(struct nft_base_chain, chain);
	__u8 pf = BPF_CORE_READ(base, ops.pf);
	return pf == NFPROTO_IPV4 || pf == NFPROTO_IPV6 || pf == NFPROTO_INET ? base : 0;
}

/* A drop record for the base chain priv that dropped skb. */
static __always_inline void nft_chain_dropped(struct sk_buff *skb, const void *priv)
{
	const struct nft_base_chain *base = nft_ip_base_chain(priv);
	if (base)
		nf_chain_dropped(skb, BPF_CORE_READ(base, ops.hooknum), BPF_CORE_READ(base, ops.priority),
				 BPF_CORE_READ((const struct nft_chain *)priv, table, name), PT_NF_EVAL_NFT);
}

/* nft_do_chain returned: before 6.11 a drop is the verdict NF_DROP (nf_hook_slow frees the packet after). */
static __always_inline void nft_chain_done(const struct nft_pktinfo *pkt, const void *priv, unsigned int ret)
{
	nft_mark(0, 0);
	if ((ret & NF_VERDICT_MASK) == NF_DROP)
		nft_chain_dropped(BPF_CORE_READ(pkt, skb), priv);
}

/* The chain record nft_chain_freeing builds: not on the stack, where on_kfree_skb has its own. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pathtrace_record);
} chain_scratch SEC(".maps");

/* kfree_skb of skb, whose record freed the filter wanted: when nft_do_chain is evaluating it on this CPU, that
 * chain dropped it (6.11+), and its chain record goes first, with freed's tuple (the filter's answer is known).
 * Not inlined, and its record in a map: on_kfree_skb's stack has no room for a second record beside the
 * expression's calls (512 bytes in all). */
static __noinline void nft_chain_freeing(const struct sk_buff *skb, const struct pathtrace_record *freed)
{
	__u32 zero = 0;
	struct nft_active *a = bpf_map_lookup_elem(&nft_active, &zero);
	if (!a || a->skb != (__u64)skb)
		return;
	const struct nft_chain *chain = (const void *)a->chain;
	const struct nft_base_chain *base = nft_ip_base_chain(chain);
	struct pathtrace_record *r = bpf_map_lookup_elem(&chain_scratch, &zero);
	if (!base || !r)
		return;
	__builtin_memcpy(r, freed, sizeof(*r));
	r->ts_ns = r->location = 0;
	r->ifindex = r->ifindex_out = 0;
	nf_chain_emit(r, BPF_CORE_READ(base, ops.hooknum), BPF_CORE_READ(base, ops.priority),
		      BPF_CORE_READ(chain, table, name), PT_NF_EVAL_NFT);
}

SEC("fentry/nft_do_chain")
int BPF_PROG(nft_do_chain_entry, struct nft_pktinfo *pkt, void *priv)
{
	nft_mark((__u64)BPF_CORE_READ(pkt, skb), (__u64)priv);
	return 0;
}

SEC("fexit/nft_do_chain")
int BPF_PROG(nft_do_chain_exit, struct nft_pktinfo *pkt, void *priv, unsigned int ret)
{
	nft_chain_done(pkt, priv, ret);
	return 0;
}

/* ipt_do_table / ip6t_do_table returned verdict for arguments a0..a2 (in either order). */
static __always_inline void xt_table_done(unsigned long long a0, unsigned long long a1, unsigned long long a2,
					  unsigned long long verdict)
{
	if ((verdict & NF_VERDICT_MASK) != NF_DROP)
		return;
	const struct xt_table *t = (const void *)(xt_table_first ? a0 : a2);
	struct sk_buff *skb = (void *)(xt_table_first ? a1 : a0);
	const struct nf_hook_state *st = (const void *)(xt_table_first ? a2 : a1);
	nf_chain_dropped(skb, BPF_CORE_READ(st, hook), BPF_CORE_READ(t, priority), (const char *)&t->name,
			 PT_NF_EVAL_XT);
}

/* Each argument is loaded at a constant offset: the verifier refuses a computed one into ctx. */
static __always_inline void xt_table_exit(unsigned long long *ctx)
{
	unsigned long long a0 = ctx[0], a1 = ctx[1], a2 = ctx[2];
	barrier_var(a0);
	barrier_var(a1);
	barrier_var(a2);
	xt_table_done(a0, a1, a2, ctx[3]);
}

SEC("fexit/ipt_do_table")
int ipt_do_table_exit(unsigned long long *ctx)
{
	xt_table_exit(ctx);
	return 0;
}

SEC("fexit/ip6t_do_table")
int ip6t_do_table_exit(unsigned long long *ctx)
{
	xt_table_exit(ctx);
	return 0;
}

/* ---- the same with kprobes, where trampolines are refused ---------------- */

/* A kretprobe has no arguments: each kprobe keeps its call's arguments on a
 * per-CPU stack, popped by the kretprobe. Calls nest per CPU (a softirq inside
 * a hook) and return in order; a frame too deep is counted, not kept. */
#define KP_DEPTH 8

struct kp_frames {
	__u32 depth;
	__u32 pad;
	__u64 args[KP_DEPTH][3];
};

enum kp_function {
	KP_NF_HOOK_SLOW,
	KP_NFT_DO_CHAIN,
	KP_IPT_DO_TABLE,
	KP_IP6T_DO_TABLE,
	KP_FUNCTIONS
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KP_FUNCTIONS);
	__type(key, __u32);
	__type(value, struct kp_frames);
} kp_stack SEC(".maps");

static __always_inline void kp_push(__u32 fn, __u64 a0, __u64 a1, __u64 a2)
{
	struct kp_frames *f = bpf_map_lookup_elem(&kp_stack, &fn);
	if (!f)
		return;
	__u32 d = f->depth;
	if (d < KP_DEPTH) {
		f->args[d][0] = a0;
		f->args[d][1] = a1;
		f->args[d][2] = a2;
	}
	f->depth = d + 1;
}

/* The arguments of the call returning now; false when they were not kept. */
static __always_inline bool kp_pop(__u32 fn, __u64 *a0, __u64 *a1, __u64 *a2)
{
	struct kp_frames *f = bpf_map_lookup_elem(&kp_stack, &fn);
	if (!f || f->depth == 0)
		return false;
	__u32 d = --f->depth;
	if (d >= KP_DEPTH)
		return false;
	*a0 = f->args[d][0];
	*a1 = f->args[d][1];
	*a2 = f->args[d][2];
	return true;
}

SEC("kprobe/nf_hook_slow")
int BPF_KPROBE(kp_nf_hook_slow, struct sk_buff *skb, const struct nf_hook_state *state)
{
	kp_push(KP_NF_HOOK_SLOW, (__u64)skb, (__u64)state, 0);
	nf_hook_record(skb, state, PT_NF_SLOT_ENTRY);
	return 0;
}

SEC("kretprobe/nf_hook_slow")
int BPF_KRETPROBE(kr_nf_hook_slow, int ret)
{
	__u64 skb, state, unused;
	if (kp_pop(KP_NF_HOOK_SLOW, &skb, &state, &unused) && ret == 1)
		nf_hook_record((struct sk_buff *)skb, (const struct nf_hook_state *)state, PT_NF_SLOT_EXIT);
	return 0;
}

SEC("kprobe/nft_do_chain")
int BPF_KPROBE(kp_nft_do_chain, const struct nft_pktinfo *pkt, const void *priv)
{
	kp_push(KP_NFT_DO_CHAIN, (__u64)pkt, (__u64)priv, 0);
	nft_mark((__u64)BPF_CORE_READ(pkt, skb), (__u64)priv);
	return 0;
}

SEC("kretprobe/nft_do_chain")
int BPF_KRETPROBE(kr_nft_do_chain, unsigned int ret)
{
	__u64 pkt, priv, unused;
	if (kp_pop(KP_NFT_DO_CHAIN, &pkt, &priv, &unused))
		nft_chain_done((const struct nft_pktinfo *)pkt, (const void *)priv, ret);
	return 0;
}

#define KP_XT(fn, id)                                                                                                  \
	SEC("kprobe/" #fn)                                                                                             \
	int BPF_KPROBE(kp_##fn, void *a0, void *a1, void *a2)                                                          \
	{                                                                                                              \
		kp_push(id, (__u64)a0, (__u64)a1, (__u64)a2);                                                          \
		return 0;                                                                                              \
	}                                                                                                              \
	SEC("kretprobe/" #fn)                                                                                          \
	int BPF_KRETPROBE(kr_##fn, unsigned int ret)                                                                   \
	{                                                                                                              \
		__u64 a0, a1, a2;                                                                                      \
		if (kp_pop(id, &a0, &a1, &a2))                                                                         \
			xt_table_done(a0, a1, a2, ret);                                                                \
		return 0;                                                                                              \
	}
KP_XT(ipt_do_table, KP_IPT_DO_TABLE)
KP_XT(ip6t_do_table, KP_IP6T_DO_TABLE)

#endif
