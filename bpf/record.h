/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one record layout shared by the BPF programs (bpf/), the native addon
 * (native/) and the TypeScript decoder (src/trace/record.ts). It is defined once, in
 * the X-macros below; scripts/generate-record-ts.mjs writes them into
 * src/trace/record.generated.ts when the TypeScript builds, and
 * test/unit/record-layout.test.ts fails if that differs from what the compiler
 * built. A new field: a line in PATHTRACE_RECORD_FIELDS, its decoding in
 * src/trace/record.ts (tsc says where). A new point: a line in PATHTRACE_POINTS.
 *
 * Multi-byte fields are in host byte order except the addresses, which keep
 * network order. Included from BPF (vmlinux.h types) and from C++ (linux/types.h).
 */
#ifndef PATHTRACE_RECORD_H
#define PATHTRACE_RECORD_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/*
 * Where a record was produced: P(name, id, the name output gives it, its --points group) makes
 * PT_POINT_<name> = id. A tracepoint's point is named after its tracepoint (its program's SEC("tp_btf/...")).
 * Listed by group, in the order a packet meets them; ids are explicit and never reused (recorded traces hold them).
 */
/* clang-format off */
#define PATHTRACE_POINTS(P) \
	P(NETFILTER, 1, "netfilter", "netfilter")            /* a netfilter hook probe; hook and probe say which */ \
	P(NF_CHAIN, 18, "netfilter chain", "netfilter")      /* a table's chain returned a drop verdict (trampolines,
	                                                        < 6.4): hook, probe = PT_NF_EVAL_*, aux = the chain's
	                                                        priority, comm = the table's name (truncated to 15
	                                                        characters) */ \
	P(NAPI_GRO_RECEIVE, 12, "napi_gro_receive_entry", "device") /* NAPI driver receive */ \
	P(NETIF_RX, 11, "netif_rx", "device")                 /* handed to the backlog (veth, lo) */ \
	P(NETIF_RECEIVE_SKB, 2, "netif_receive_skb", "device") /* the RX tcpdump tap follows */ \
	P(NET_DEV_QUEUE, 13, "net_dev_queue", "device")       /* dev_queue_xmit, before the qdisc */ \
	P(NET_DEV_START_XMIT, 3, "net_dev_start_xmit", "device") /* the TX tcpdump tap precedes */ \
	P(QDISC_ENQUEUE, 14, "qdisc_enqueue", "qdisc")         /* really queued; aux = queue length */ \
	P(QDISC_DEQUEUE, 15, "qdisc_dequeue", "qdisc") \
	P(KFREE_SKB, 4, "kfree_skb", "drops")                  /* reason and location */ \
	P(CONSUME_SKB, 5, "consume_skb", "drops")              /* location */ \
	P(TCP_SEND_RESET, 6, "tcp_send_reset", "tcp")          /* tuple of the packet that caused it */ \
	P(TCP_RECEIVE_RESET, 7, "tcp_receive_reset", "tcp")    /* socket tuple */ \
	P(TCP_RETRANSMIT_SKB, 8, "tcp_retransmit_skb", "tcp")  /* socket tuple and seq */ \
	P(TCP_RETRANSMIT_SYNACK, 9, "tcp_retransmit_synack", "tcp") /* request socket tuple */ \
	P(INET_SOCK_SET_STATE, 10, "inet_sock_set_state", "tcp") /* old and new state */ \
	P(SKB_COPY_DATAGRAM, 16, "skb_copy_datagram_iovec", "socket") /* read by the application; aux = bytes */ \
	P(SOCK_RECV_LENGTH, 17, "sock_recv_length", "socket")  /* on a UDP socket (its reads copy without
	                                                          skb_copy_datagram_iovec); socket tuple, aux = bytes */ \
	P(XDP_VERDICT, 19, "xdp_verdict", "device")            /* an XDP program returned anything but XDP_PASS
	                                                          (fexit on it, device_verdicts.bpf.c): skb = 0 (an
	                                                          xdp_buff), ifindex, aux = the action, location = the
	                                                          program's id, comm = its name (except ICMP errors) */ \
	P(TC_VERDICT, 20, "tc_verdict", "device")              /* a tc program returned TC_ACT_SHOT (fexit on it):
	                                                          ifindex, probe = PT_AT_INGRESS or PT_AT_EGRESS, aux,
	                                                          location and comm as XDP_VERDICT's */ \
	P(XDP_EXCEPTION, 21, "xdp_exception", "device")        /* the tracepoint (XDP_ABORTED, an invalid action, a
	                                                          failed XDP_TX), told with the free of the packet that
	                                                          follows on its CPU and device: that packet's tuple
	                                                          and skb, ifindex, aux = the action, location and comm
	                                                          the program's id and name */ \
	P(XDP_REDIRECT_ERR, 22, "xdp_redirect_err", "device")  /* a failed XDP_REDIRECT, the same way; aux = the
	                                                          error (a negative errno) */ \
	P(XDP_REDIRECT_MAP_ERR, 23, "xdp_redirect_map_err", "device") /* the same, redirected through a map */
/* clang-format on */

enum pathtrace_point {
#define PT_POINT_ENUM(name, id, ...) PT_POINT_##name = id,
	PATHTRACE_POINTS(PT_POINT_ENUM)
#undef PT_POINT_ENUM
};

/* PT_POINT_NF_CHAIN: which evaluator returned the verdict. */
#define PT_NF_EVAL_NFT 1 /* nft_do_chain: nftables and iptables-nft */
#define PT_NF_EVAL_XT  2 /* ipt_do_table / ip6t_do_table: iptables-legacy */

/* kfree_skb's reason on kernels whose tracepoint has none (< 5.17). */
#define PT_REASON_NONE 0xffffffffu

/* The way-out drops, whose kfree_skb record holds the way out the packet's route gave it (ifindex_out, aux, ip_len),
 * for a packet too big for it: PKT_TOO_BIG, NOT_SPECIFIED (ip_fragment's and ip6_fragment's refusal of a packet this
 * host sent), and every drop of a kernel that names no reasons. aux's flag: the MTU is the route's MTU metric
 * (`ip route ... mtu N`), not the device's. */
#define PT_MTU_FROM_ROUTE 0x80000000u

/* Netfilter probe slots: one BPF program per slot, attached at one priority of each hook. */
#define PT_NF_SLOTS	 8
#define PT_NF_SLOT_ENTRY 0
#define PT_NF_SLOT_EXIT	 (PT_NF_SLOTS - 1)

#define PT_HOOK_NONE 0xff

/* PT_POINT_TC_VERDICT: the hook's direction, in probe. */
#define PT_AT_EGRESS  0
#define PT_AT_INGRESS 1

/*
 * struct pathtrace_record, a field a line: F(type, name), or A(type, name, count) for an array; its union,
 * which ends it, in a list of its own. Types are those of scripts/generate-record-ts.mjs's TYPE_SIZES.
 */
/* clang-format off */
#define PATHTRACE_RECORD_FIELDS(F, A) \
	F(__u64, ts_ns)         /* bpf_ktime_get_ns(), CLOCK_MONOTONIC */ \
	F(__u64, skb)           /* skb address, 0 for socket-only records */ \
	F(__u64, location)      /* kfree/consume: the freeing function's address; XDP and tc points: the program's id */ \
	F(__u32, netns)         /* network namespace inode number, 0 if unknown */ \
	F(__u32, ifindex)       /* device of RX/TX; netfilter: in-device */ \
	F(__u32, ifindex_out)   /* netfilter: out-device; kfree_skb's way-out drops (PT_MTU_FROM_ROUTE): its route's */ \
	F(__u32, reason)        /* kfree_skb: enum skb_drop_reason; tcp_send_reset: sk_rst_reason */ \
	F(__u32, seq)           /* TCP sequence number; ICMP: the header's bytes 4-7 (the MTU of a frag needed,
	                           low 16 bits, or of a packet too big) */ \
	F(__u32, ack)           /* TCP acknowledgement number */ \
	F(__u16, point)         /* enum pathtrace_point */ \
	F(__u8, hook)           /* netfilter hook (NF_INET_*), PT_HOOK_NONE elsewhere */ \
	F(__u8, probe)          /* netfilter probe slot */ \
	F(__u8, family)         /* 4, 6, or 0 when the headers could not be read */ \
	F(__u8, l4proto)        /* IPPROTO_TCP, _UDP, _ICMP, _ICMPV6 */ \
	F(__u8, tcp_flags)      /* TCP header byte 13: FIN 0x01 ... CWR 0x80 */ \
	F(__u8, ttl)            /* IPv4 TTL / IPv6 hop limit */ \
	F(__u16, sport) \
	F(__u16, dport) \
	F(__u16, len)           /* transport payload length */ \
	F(__u16, ip_id)         /* IPv4 identification, 0 for IPv6 */ \
	A(__u8, saddr, 16)      /* IPv4 in the first 4 bytes */ \
	A(__u8, daddr, 16) \
	F(__u32, pid)           /* current tgid (socket records) */ \
	F(__u8, old_state)      /* inet_sock_set_state */ \
	F(__u8, new_state) \
	F(__u8, icmp_type) \
	F(__u8, icmp_code) \
	F(__u8, inner_proto)    /* ICMP errors: protocol of the quoted packet, whose ports are in sport/dport */ \
	F(__u8, pad) \
	F(__u16, ip_len)        /* kfree_skb's way-out drops: the length its route's MTU was held against (its IP
	                           length; a GSO packet's: one segment's), at most 65535 */ \
	F(__u32, aux)           /* per point: bytes read, qdisc length; kfree_skb's way-out drops: its route's MTU,
	                           with PT_MTU_FROM_ROUTE where the route's MTU metric gave it */

#define PATHTRACE_RECORD_UNION(F, A) \
	A(char, comm, 16)       /* current task (socket and read records); XDP and tc points: the program's name */ \
	A(__u8, inner_daddr, 16) /* ICMP errors: destination of the quoted packet */
/* clang-format on */

#define PT_MEMBER(type, name)	    type name;
#define PT_ARRAY(type, name, count) type name[count];
struct pathtrace_record {
	PATHTRACE_RECORD_FIELDS(PT_MEMBER, PT_ARRAY)
	union {
		PATHTRACE_RECORD_UNION(PT_MEMBER, PT_ARRAY)
	};
};

/* Packet bytes for --write, in a ring of their own: the IP header on, up to
 * the snap length, tied to the event record of the same skb and ts_ns. */
#define PT_MAX_SNAPLEN 1024

/* struct pathtrace_bytes's header, as struct pathtrace_record's fields; its data follows. */
/* clang-format off */
#define PATHTRACE_BYTES_FIELDS(F, A) \
	F(__u64, ts_ns)         /* equals the event record's */ \
	F(__u64, skb) \
	F(__u16, caplen)        /* bytes in data */ \
	F(__u16, wirelen)       /* the IP packet's length */ \
	F(__u16, point) \
	F(__u16, pad)
/* clang-format on */

struct pathtrace_bytes {
	PATHTRACE_BYTES_FIELDS(PT_MEMBER, PT_ARRAY)
	__u8 data[PT_MAX_SNAPLEN];
};
#undef PT_MEMBER
#undef PT_ARRAY

#define PT_BYTES_HEADER 24

/* Keys of the lost map. */
#define PT_LOST_EVENTS 0
#define PT_LOST_BYTES  1

/* Filter applied in BPF, set in .rodata before the programs load. */
#define PT_MAX_HOSTS  16
#define PT_PROTO_TCP  0x1
#define PT_PROTO_UDP  0x2
#define PT_PROTO_ICMP 0x4

/* A tcpdump filter expression as libpcap compiles it for raw IP (classic BPF, the layout of struct
 * sock_filter), run by the interpreter in bpf/expression.bpf.h. */
#define PT_EXPR_MAX_INSNS 256 /* a power of two: the interpreter masks its program counter with it */
#define PT_EXPR_WINDOW	  256 /* bytes of a packet, from its IP header, that the expression can read */

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
	__u32 netns;	 /* only this namespace; 0 = any */
	__u8 protos;	 /* PT_PROTO_* mask */
	__u8 any_port;	 /* 1 when no --port was given */
	__u8 nhosts;	 /* 0 = any host */
	__u8 expression; /* 1: the program in .bss `expr` must match too */
	__u16 snaplen;	 /* --write: bytes of each packet to capture; 0 = none */
	__u16 pad2;
	struct pathtrace_host hosts[PT_MAX_HOSTS];
	__u8 ports[65536 / 8]; /* bitmap of ports to match as source or destination */
};

/* The constants user space uses: scripts/generate-record-ts.mjs writes them into TypeScript, without PT_. */
/* clang-format off */
#define PATHTRACE_CONSTANTS(C) \
	C(PT_REASON_NONE) C(PT_MTU_FROM_ROUTE) C(PT_NF_EVAL_NFT) C(PT_NF_EVAL_XT) C(PT_NF_SLOTS) C(PT_NF_SLOT_ENTRY) \
	C(PT_NF_SLOT_EXIT) C(PT_HOOK_NONE) C(PT_MAX_SNAPLEN) C(PT_BYTES_HEADER) C(PT_MAX_HOSTS) C(PT_PROTO_TCP) \
	C(PT_PROTO_UDP) C(PT_PROTO_ICMP) C(PT_EXPR_MAX_INSNS) C(PT_EXPR_WINDOW) C(PT_AT_EGRESS) C(PT_AT_INGRESS)
/* clang-format on */

#endif
