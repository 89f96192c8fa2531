/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one record layout shared by the BPF programs (bpf/), the native addon
 * (native/) and, through test/unit/record-layout.test.ts, the TypeScript
 * decoder (src/record.ts). Change it here and in src/record.ts together.
 *
 * Multi-byte fields are in host byte order except the addresses, which keep
 * network order. Included from BPF (vmlinux.h types) and from C++ (linux/types.h).
 */
#ifndef PATHTRACE_RECORD_H
#define PATHTRACE_RECORD_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Where a record was produced. */
enum pathtrace_point {
	PT_POINT_NETFILTER = 1,          /* a netfilter hook probe; hook and probe say which */
	PT_POINT_NETIF_RECEIVE_SKB = 2,  /* net:netif_receive_skb, the RX tcpdump tap follows */
	PT_POINT_NET_DEV_START_XMIT = 3, /* net:net_dev_start_xmit, the TX tcpdump tap precedes */
	PT_POINT_KFREE_SKB = 4,          /* skb:kfree_skb, reason and location */
	PT_POINT_CONSUME_SKB = 5,        /* skb:consume_skb, location */
	PT_POINT_TCP_SEND_RESET = 6,     /* tcp:tcp_send_reset, tuple of the packet that caused it */
	PT_POINT_TCP_RECEIVE_RESET = 7,  /* tcp:tcp_receive_reset, socket tuple */
	PT_POINT_TCP_RETRANSMIT_SKB = 8, /* tcp:tcp_retransmit_skb, socket tuple and seq */
	PT_POINT_TCP_RETRANSMIT_SYNACK = 9, /* tcp:tcp_retransmit_synack, request socket tuple */
	PT_POINT_INET_SOCK_SET_STATE = 10,  /* sock:inet_sock_set_state, old and new state */
	PT_POINT_NETIF_RX = 11,              /* net:netif_rx: handed to the backlog (veth, lo) */
	PT_POINT_NAPI_GRO_RECEIVE = 12,      /* net:napi_gro_receive_entry: NAPI driver receive */
	PT_POINT_NET_DEV_QUEUE = 13,         /* net:net_dev_queue: dev_queue_xmit, before the qdisc */
	PT_POINT_QDISC_ENQUEUE = 14,         /* qdisc:qdisc_enqueue: really queued; aux = queue length */
	PT_POINT_QDISC_DEQUEUE = 15,         /* qdisc:qdisc_dequeue */
	PT_POINT_SKB_COPY_DATAGRAM = 16,     /* skb:skb_copy_datagram_iovec: read by the application; aux = bytes */
	PT_POINT_SOCK_RECV_LENGTH = 17,      /* sock:sock_recv_length on a UDP socket (its reads copy without
	                                        skb_copy_datagram_iovec); socket tuple, aux = bytes */
	PT_POINT_NF_CHAIN = 18,              /* a table's chain returned a drop verdict (trampolines, < 6.4):
	                                        hook, probe = PT_NF_EVAL_*, aux = the chain's priority,
	                                        comm = the table's name (truncated to 15 characters) */
};

/* PT_POINT_NF_CHAIN: which evaluator returned the verdict. */
#define PT_NF_EVAL_NFT 1 /* nft_do_chain: nftables and iptables-nft */
#define PT_NF_EVAL_XT 2  /* ipt_do_table / ip6t_do_table: iptables-legacy */

/* kfree_skb's reason on kernels whose tracepoint has none (< 5.17). */
#define PT_REASON_NONE 0xffffffffu

/* Netfilter probe slots: one BPF program per slot, attached at one priority of each hook. */
#define PT_NF_SLOTS 8
#define PT_NF_SLOT_ENTRY 0
#define PT_NF_SLOT_EXIT (PT_NF_SLOTS - 1)

#define PT_HOOK_NONE 0xff

struct pathtrace_record {
	__u64 ts_ns;       /* bpf_ktime_get_ns(), CLOCK_MONOTONIC */
	__u64 skb;         /* skb address, 0 for socket-only records */
	__u64 location;    /* kfree/consume: the freeing function's address */
	__u32 netns;       /* network namespace inode number, 0 if unknown */
	__u32 ifindex;     /* device of RX/TX; netfilter: in-device */
	__u32 ifindex_out; /* netfilter: out-device */
	__u32 reason;      /* kfree_skb: enum skb_drop_reason; tcp_send_reset: sk_rst_reason */
	__u32 seq;         /* TCP sequence number */
	__u32 ack;         /* TCP acknowledgement number */
	__u16 point;       /* enum pathtrace_point */
	__u8 hook;         /* netfilter hook (NF_INET_*), PT_HOOK_NONE elsewhere */
	__u8 probe;        /* netfilter probe slot */
	__u8 family;       /* 4, 6, or 0 when the headers could not be read */
	__u8 l4proto;      /* IPPROTO_TCP, _UDP, _ICMP, _ICMPV6 */
	__u8 tcp_flags;    /* TCP header byte 13: FIN 0x01 ... CWR 0x80 */
	__u8 ttl;          /* IPv4 TTL / IPv6 hop limit */
	__u16 sport;
	__u16 dport;
	__u16 len;         /* transport payload length */
	__u16 ip_id;       /* IPv4 identification, 0 for IPv6 */
	__u8 saddr[16];    /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u32 pid;         /* current tgid (socket records) */
	__u8 old_state;    /* inet_sock_set_state */
	__u8 new_state;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 inner_proto;  /* ICMP errors: protocol of the quoted packet, whose ports are in sport/dport */
	__u8 pad[3];
	__u32 aux;         /* per point: bytes read, qdisc length */
	union {
		char comm[16];          /* current task (socket and read records) */
		__u8 inner_daddr[16];   /* ICMP errors: destination of the quoted packet */
	};
};

/* Packet bytes for --write, in a ring of their own: the IP header on, up to
 * the snap length, tied to the event record of the same skb and ts_ns. */
#define PT_MAX_SNAPLEN 1024

struct pathtrace_bytes {
	__u64 ts_ns;   /* equals the event record's */
	__u64 skb;
	__u16 caplen;  /* bytes in data */
	__u16 wirelen; /* the IP packet's length */
	__u16 point;
	__u16 pad;
	__u8 data[PT_MAX_SNAPLEN];
};

#define PT_BYTES_HEADER 24

/* Keys of the lost map. */
#define PT_LOST_EVENTS 0
#define PT_LOST_BYTES 1

/* Filter applied in BPF, set in .rodata before the programs load. */
#define PT_MAX_HOSTS 16
#define PT_PROTO_TCP 0x1
#define PT_PROTO_UDP 0x2
#define PT_PROTO_ICMP 0x4

/* A tcpdump filter expression as libpcap compiles it for raw IP (classic BPF, the layout of struct
 * sock_filter), run by the interpreter in bpf/expression.bpf.h. */
#define PT_EXPR_MAX_INSNS 256 /* a power of two: the interpreter masks its program counter with it */
#define PT_EXPR_WINDOW 256    /* bytes of a packet, from its IP header, that the expression can read */

struct pathtrace_expr_insn {
	__u16 code;
	__u8 jt;
	__u8 jf;
	__u32 k;
};

struct pathtrace_expr {
	__u32 len; /* instructions; 0 = no expression */
	__u32 pad;
	struct pathtrace_expr_insn insns[PT_EXPR_MAX_INSNS];
};

struct pathtrace_host {
	__u8 family; /* 4 or 6 */
	__u8 addr[16];
};

struct pathtrace_filter {
	__u32 netns;     /* only this namespace; 0 = any */
	__u8 protos;     /* PT_PROTO_* mask */
	__u8 any_port;   /* 1 when no --port was given */
	__u8 nhosts;     /* 0 = any host */
	__u8 expression; /* 1: the program in .bss `expr` must match too */
	__u16 snaplen;   /* --write: bytes of each packet to capture; 0 = none */
	__u16 pad2;
	struct pathtrace_host hosts[PT_MAX_HOSTS];
	__u8 ports[65536 / 8]; /* bitmap of ports to match as source or destination */
};

#endif
