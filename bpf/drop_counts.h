/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The agent's drop counts (bpf/agent.bpf.c), read by native/agent.cc: a per-CPU hash map "drops" from
 * struct pathtrace_drop_key to struct pathtrace_drop_count. Counted in the kernel, so that an agent left on
 * every server sends nothing per packet to user space.
 */
#ifndef PATHTRACE_DROP_COUNTS_H
#define PATHTRACE_DROP_COUNTS_H

#include "record.h"

struct pathtrace_drop_key {
	__u64 location; /* the freeing function's address (user space names it from kallsyms) */
	__u32 netns;	/* network namespace inode number, 0 if unknown */
	__u32 ifindex;	/* the device it was on, 0 for none */
	__u32 reason;	/* enum skb_drop_reason; PT_REASON_NONE before 5.17 */
	__u16 port;	/* --label-ports: the port of --port's list the packet has (its destination's first); else 0 */
	__u8 hook;	/* NF_INET_* of the netfilter hook that dropped it; PT_HOOK_NONE */
	__u8 family;	/* 4 or 6 */
	__u8 proto;	/* IPPROTO_* (IPv6: the first next header) */
	__u8 pad[7];
};

struct pathtrace_drop_count {
	__u64 packets;
	__u64 bytes;
};

/* The first drop of a key, sent to user space ("samples" ring) so that a new kind of drop is told with a packet:
 * its addresses (IPv4 in the first 4 bytes) and ports (0 for protocols without). */
struct pathtrace_drop_sample {
	struct pathtrace_drop_key key;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 len;
};

/* Counters of the agent itself, in the "lost" per-CPU array. */
enum pathtrace_agent_lost {
	PT_AGENT_SAMPLES_LOST, /* first drops of a key not told: the sample ring was full */
	PT_AGENT_LOST_KINDS,
};

#define PT_AGENT_MAX_KEYS    16384
#define PT_AGENT_SAMPLE_RING (64 * 1024)
/* The netfilter functions whose frees are a hook's drop: nf_hook_slow, the table evaluators (since 6.11
 * nft_do_chain frees what it drops), nf_queue, ... */
#define PT_AGENT_NF_FREERS   8

#endif
