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
 * Kernel pointers here are read with CO-RE reads, not loads: the structures
 * differ between the kernels pathtrace runs on, and the reads work the same
 * in every program type.
 */
#ifndef PATHTRACE_NETFILTER_TRAMPOLINES_H
#define PATHTRACE_NETFILTER_TRAMPOLINES_H

#define NFPROTO_INET 1
#define NFPROTO_IPV4 2
#define NFPROTO_IPV6 10
#define NF_DROP 0
#define NF_VERDICT_MASK 0xff

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

/* Headers and the user's filter, with CO-RE reads of the skb. */
static __always_inline bool skb_wanted_core(const struct sk_buff *skb, struct pathtrace_record *r)
{
	if (filter.netns && r->netns && r->netns != filter.netns)
		return false;
	__u16 nh = BPF_CORE_READ(skb, network_header);
	if (nh == (__u16)~0U)
		return false;
	unsigned char *head = BPF_CORE_READ(skb, head);
	return parse_ip(head + nh, r) && packet_wanted_nfct(BPF_CORE_READ(skb, _nfct), r);
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
	emit(&r);
}

SEC("fentry/nf_hook_slow")
int BPF_PROG(nf_hook_slow_entry, struct sk_buff *skb, const struct nf_hook_state *state)
{
	nf_hook_record(skb, state, PT_NF_SLOT_ENTRY);
	return 0;
}

SEC("fexit/nf_hook_slow")
int BPF_PROG(nf_hook_slow_exit, struct sk_buff *skb, const struct nf_hook_state *state,
	     const struct nf_hook_entries *e, unsigned int s, int ret)
{
	if (ret == 1) /* accepted; 0 is stolen or queued, < 0 dropped (and freed) */
		nf_hook_record(skb, state, PT_NF_SLOT_EXIT);
	return 0;
}

/* A base chain (or legacy table) returned a drop verdict for skb. */
static __always_inline void nf_chain_dropped(struct sk_buff *skb, __u8 hook, int priority, const char *table, __u8 kind)
{
	struct pathtrace_record r;
	init(&r, PT_POINT_NF_CHAIN, skb);
	r.probe = kind;
	r.hook = hook;
	r.aux = priority;
	r.reason = NF_DROP;
	r.netns = skb_netns_core(skb);
	if (!skb_wanted_core(skb, &r))
		return;
	bpf_probe_read_kernel_str(r.comm, sizeof(r.comm), table);
	emit(&r);
}

SEC("fexit/nft_do_chain")
int BPF_PROG(nft_do_chain_exit, struct nft_pktinfo *pkt, void *priv, unsigned int ret)
{
	if ((ret & NF_VERDICT_MASK) != NF_DROP)
		return 0;
	/* priv is the base chain's struct nft_chain, inside struct nft_base_chain with the hook's ops. */
	const struct nft_chain *chain = priv;
	const struct nft_base_chain *base = (const void *)chain - bpf_core_field_offset(struct nft_base_chain, chain);
	__u8 pf = BPF_CORE_READ(base, ops.pf);
	if (pf != NFPROTO_IPV4 && pf != NFPROTO_IPV6 && pf != NFPROTO_INET)
		return 0;
	nf_chain_dropped(BPF_CORE_READ(pkt, skb), BPF_CORE_READ(base, ops.hooknum), BPF_CORE_READ(base, ops.priority),
			 BPF_CORE_READ(chain, table, name), PT_NF_EVAL_NFT);
	return 0;
}

static __always_inline void xt_table_done(unsigned long long *ctx)
{
	if ((ctx[3] & NF_VERDICT_MASK) != NF_DROP)
		return;
	/* Each argument is loaded at a constant offset: the verifier refuses a computed one into ctx. */
	unsigned long long a0 = ctx[0], a1 = ctx[1], a2 = ctx[2];
	barrier_var(a0);
	barrier_var(a1);
	barrier_var(a2);
	const struct xt_table *t = (const void *)(xt_table_first ? a0 : a2);
	struct sk_buff *skb = (void *)(xt_table_first ? a1 : a0);
	const struct nf_hook_state *st = (const void *)(xt_table_first ? a2 : a1);
	nf_chain_dropped(skb, BPF_CORE_READ(st, hook), BPF_CORE_READ(t, priority), (const char *)&t->name, PT_NF_EVAL_XT);
}

SEC("fexit/ipt_do_table")
int ipt_do_table_exit(unsigned long long *ctx)
{
	xt_table_done(ctx);
	return 0;
}

SEC("fexit/ip6t_do_table")
int ip6t_do_table_exit(unsigned long long *ctx)
{
	xt_table_done(ctx);
	return 0;
}

#endif
