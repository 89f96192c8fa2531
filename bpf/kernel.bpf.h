/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the programs read of the kernel beyond vmlinux.h: the constants it cannot carry (BTF holds enums,
 * not #defines) and small readers of sk_buff, net_device and sock (a namespace, the network header, the end
 * of the linear data).
 */
#ifndef PATHTRACE_KERNEL_BPF_H
#define PATHTRACE_KERNEL_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#if defined(__TARGET_ARCH_arm64)
/* arm64's kprobe context, whose registers bpf_tracing.h's BPF_KPROBE reads the arguments from. vmlinux.h is
 * generated on the x86 build machine for both architectures and lacks it; CO-RE relocates these fields against
 * the running kernel's own BTF. */
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
} __attribute__((preserve_access_index));
#endif

/* One more in slot key of a per-CPU array of counters (user space sums the CPUs): records lost to a full ring. */
static __always_inline void count_in(void *counters, __u32 key)
{
	__u64 *n = bpf_map_lookup_elem(counters, &key);
	if (n)
		*n += 1;
}

/* The kernel's #defines the programs use. Its enums come with vmlinux.h: NF_INET_* (hooks), NFPROTO_*,
 * IPPROTO_* (but IPv6's own), IPS_* (conntrack status), IP_CT_* (a packet's conntrack info). */
#define NF_DROP		    0
#define NF_ACCEPT	    1
#define NF_VERDICT_MASK	    0xff
#define ETH_P_IP	    0x0800
#define ETH_P_IPV6	    0x86DD
#define AF_INET		    2
#define AF_INET6	    10
#define IPPROTO_ICMPV6	    58
#define IP_OFFSET	    0x1fff /* iphdr.frag_off: the fragment's offset, not 0 after the first fragment */
#define ICMP_DEST_UNREACH   3
#define ICMP_TIME_EXCEEDED  11
#define ICMP_PARAMETERPROB  12
#define ICMPV6_DEST_UNREACH 1 /* ICMPv6 errors are types 1 to 4 */
#define ICMPV6_PARAMPROB    4
#define TCPHDR_SYN	    0x02
#define TCPHDR_ACK	    0x10
#define tcp_flag_byte(th)   (((const __u8 *)(th))[13])
#define MSG_PEEK	    2
#define NFCT_INFOMASK	    7UL /* skb->_nfct: the conntrack entry's address, the packet's enum ip_conntrack_info below */
#define NFCT_PTRMASK	    ~(7UL)
#define SKB_DST_PTRMASK	    ~(1UL) /* skb->_skb_refdst: the struct dst_entry's address; bit 0, no reference held */
#define DST_METRICS_FLAGS   3UL	   /* dst->_metrics: the address of its u32 metrics[RTAX_MAX], flags below */

/* The end of an skb's linear data: what a read from its headers may reach. */
static __always_inline const unsigned char *skb_head_end(const struct sk_buff *skb)
{
	return skb->data + (skb->len - skb->data_len);
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

/* The conntrack entry of an skb's _nfct, or NULL. */
static __always_inline struct nf_conn *nfct_conn(unsigned long nfct)
{
	return (struct nf_conn *)(nfct & NFCT_PTRMASK);
}

/* The IP header from the skb's network header offset (set once IP has seen it), or NULL. */
static __always_inline const unsigned char *skb_nh(const struct sk_buff *skb)
{
	__u16 nh = skb->network_header;
	return nh == (__u16)~0U ? 0 : skb->head + nh;
}

#endif
