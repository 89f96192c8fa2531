/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The user's tcpdump expression, run in the kernel: libpcap compiles it for raw IP into classic BPF
 * (native/expression.cc), the addon puts the program in `expr`, and expr_run() interprets it over up to
 * PT_EXPR_WINDOW bytes of a packet from its IP header, copied into a per-CPU buffer. Classic BPF only
 * jumps forward, so PT_EXPR_MAX_INSNS steps always reach a return.
 *
 * `expr` is in .bss, not .rodata: the verifier then knows nothing of the program and checks the
 * interpreter once, for any expression, instead of following every path of the user's program.
 */
#ifndef PATHTRACE_EXPRESSION_BPF_H
#define PATHTRACE_EXPRESSION_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "record.h"

struct pathtrace_expr expr = {};

struct expr_buf {
	__u8 pkt[PT_EXPR_WINDOW];
	__u32 caplen;		/* bytes of pkt that hold the packet */
	__u32 wirelen;		/* the IP packet's length (BPF_LEN) */
	__u32 mem[16];		/* the program's scratch memory (BPF_MEM) */
	__u32 pc, a, x, result; /* the machine's state */
	/* A conntrack entry's tuple, read here rather than on the stack, where the programs that free packets
	 * (on_kfree_skb with nft_chain_freeing) have no room left; also for the filter without an expression. */
	struct nf_conntrack_tuple tuple;
};

/* Per CPU: a probe runs to its end on the CPU it started on. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct expr_buf);
} expr_scratch SEC(".maps");

static __always_inline struct expr_buf *expr_buf(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&expr_scratch, &zero);
}

/* Classic BPF opcodes (linux/filter.h, linux/bpf_common.h). */
#define CB_CLASS(c) ((c)&0x07)
#define CB_LD	    0x00
#define CB_LDX	    0x01
#define CB_ST	    0x02
#define CB_STX	    0x03
#define CB_ALU	    0x04
#define CB_JMP	    0x05
#define CB_RET	    0x06
#define CB_MISC	    0x07
#define CB_SIZE(c)  ((c)&0x18)
#define CB_W	    0x00
#define CB_H	    0x08
#define CB_B	    0x10
#define CB_MODE(c)  ((c)&0xe0)
#define CB_IMM	    0x00
#define CB_ABS	    0x20
#define CB_IND	    0x40
#define CB_MEM	    0x60
#define CB_LEN	    0x80
#define CB_MSH	    0xa0
#define CB_OP(c)    ((c)&0xf0)
#define CB_SRC_X    0x08
#define CB_RVAL(c)  ((c)&0x18)
#define CB_RVAL_A   0x10

static __always_inline __u8 expr_byte(const struct expr_buf *b, __u32 off)
{
	return b->pkt[off & (PT_EXPR_WINDOW - 1)];
}

/* A packet load of size bytes at off, big-endian; false beyond the bytes held (the filter then fails, as
 * classic BPF does past a packet's end). */
static __always_inline bool expr_load(const struct expr_buf *b, __u32 off, __u32 size, __u32 *out)
{
	if ((__u64)off + size > b->caplen)
		return false;
	__u32 v = expr_byte(b, off);
	if (size >= 2)
		v = (v << 8) | expr_byte(b, off + 1);
	if (size == 4)
		v = (v << 16) | ((__u32)expr_byte(b, off + 2) << 8) | expr_byte(b, off + 3);
	*out = v;
	return true;
}

/* One instruction of the program, on the machine state kept in the buffer; true when it returned (its
 * answer in b->result). The state lives in map memory, not in registers, so that the verifier knows
 * nothing of it: every step then looks the same to it, and it checks a step once instead of once per
 * value of the accumulator. */
static __always_inline bool expr_step(struct expr_buf *b)
{
	__u32 pc = b->pc;
	if (pc >= expr.len || pc >= PT_EXPR_MAX_INSNS) {
		b->result = 0;
		return true;
	}
	barrier_var(pc); /* keep the mask: clang would drop it after the test above, and the verifier needs it */
	const struct pathtrace_expr_insn *in = &expr.insns[pc & (PT_EXPR_MAX_INSNS - 1)];
	__u16 code = in->code;
	__u32 k = in->k;
	__u32 v;
	b->pc = pc + 1;
	switch (CB_CLASS(code)) {
	case CB_LD:
	case CB_LDX: {
		__u32 mode = CB_MODE(code);
		__u32 size = CB_SIZE(code) == CB_W ? 4 : CB_SIZE(code) == CB_H ? 2 : 1;
		if (mode == CB_IMM)
			v = k;
		else if (mode == CB_LEN)
			v = b->wirelen;
		else if (mode == CB_MEM)
			v = b->mem[k & 15];
		else if (mode == CB_ABS || mode == CB_IND) {
			if (!expr_load(b, mode == CB_IND ? b->x + k : k, size, &v))
				goto fail;
		} else if (mode == CB_MSH) {
			if (!expr_load(b, k, 1, &v))
				goto fail;
			v = (v & 0xf) << 2;
		} else
			goto fail;
		if (CB_CLASS(code) == CB_LD)
			b->a = v;
		else
			b->x = v;
		return false;
	}
	case CB_ST:
		b->mem[k & 15] = b->a;
		return false;
	case CB_STX:
		b->mem[k & 15] = b->x;
		return false;
	case CB_ALU: {
		__u32 s = (code & CB_SRC_X) ? b->x : k, a = b->a;
		switch (CB_OP(code)) {
		case 0x00:
			a += s;
			break;
		case 0x10:
			a -= s;
			break;
		case 0x20:
			a *= s;
			break;
		case 0x30:
			if (!s)
				goto fail;
			a /= s;
			break;
		case 0x40:
			a |= s;
			break;
		case 0x50:
			a &= s;
			break;
		case 0x60:
			a <<= (s & 31);
			break;
		case 0x70:
			a >>= (s & 31);
			break;
		case 0x80:
			a = -a;
			break;
		case 0x90:
			if (!s)
				goto fail;
			a %= s;
			break;
		case 0xa0:
			a ^= s;
			break;
		default:
			goto fail;
		}
		b->a = a;
		return false;
	}
	case CB_JMP: {
		__u32 s = (code & CB_SRC_X) ? b->x : k, a = b->a;
		bool t;
		switch (CB_OP(code)) {
		case 0x00:
			b->pc = pc + 1 + k;
			return false; /* ja */
		case 0x10:
			t = a == s;
			break;
		case 0x20:
			t = a > s;
			break;
		case 0x30:
			t = a >= s;
			break;
		case 0x40:
			t = (a & s) != 0;
			break;
		default:
			goto fail;
		}
		b->pc = pc + 1 + (t ? in->jt : in->jf);
		return false;
	}
	case CB_RET:
		b->result = (CB_RVAL(code) == CB_RVAL_A ? b->a : k) != 0;
		return true;
	case CB_MISC:
		if (code & 0x80)
			b->a = b->x; /* txa */
		else
			b->x = b->a; /* tax */
		return false;
	}
fail:
	b->result = 0;
	return true;
}

#ifndef PT_NO_BPF_LOOP
struct expr_loop_ctx {
	struct expr_buf *b; /* bpf_loop's context must be on the stack */
};

static long expr_loop_step(__u32 i, void *ctx)
{
	return expr_step(((struct expr_loop_ctx *)ctx)->b);
}
#endif

/* Whether the packet in the per-CPU buffer passes the expression. Classic BPF only jumps forward: a
 * program of n instructions returns within n steps, and bpf_loop (5.17+) lets the verifier check the
 * step once. Global, so that the verifier checks it once per program rather than at each place that
 * asks (a static one was checked four times in each packet program: over 60 s to load under 6.1 in
 * qemu). Kernels without bpf_loop get the object built with PT_NO_BPF_LOOP, where this is never asked:
 * the addon refuses expressions there (a loop the verifier walks step by step is too large for it),
 * and the callback's reference alone would keep kernels before 5.13 from loading the object. */
__noinline int expr_run(void)
{
#ifdef PT_NO_BPF_LOOP
	return 0;
#else
	struct expr_buf *b = expr_buf();
	if (!b)
		return 0;
	b->pc = b->a = b->x = b->result = 0;
	struct expr_loop_ctx c = {b};
	bpf_loop(PT_EXPR_MAX_INSNS, expr_loop_step, &c, 0);
	return b->result;
#endif
}

/* The packet's wire length from the IP header at the start of the buffer. */
static __always_inline __u32 expr_wirelen(const struct expr_buf *b)
{
	__u8 v = b->pkt[0] >> 4;
	if (v == 4)
		return ((__u32)b->pkt[2] << 8) | b->pkt[3];
	if (v == 6)
		return (((__u32)b->pkt[4] << 8) | b->pkt[5]) + 40;
	return 0;
}

/* Copies the packet whose IP header is at the kernel address l3 into the buffer: up to the window, the
 * end of what can be read (end: the skb's linear data) and the packet's own length; true when it holds
 * an IP header. The reads are of constant size (a variable one needs bounds that older verifiers lose),
 * so they may take bytes past the packet, which caplen then leaves out; a packet near the end of its page
 * gets a shorter read. Not inlined: its places would together overflow the 512-byte stack. */
static __noinline bool expr_fill(const unsigned char *l3, const unsigned char *end)
{
	struct expr_buf *b = expr_buf();
	if (!b || !l3 || end <= l3)
		return false;
	__u32 got = PT_EXPR_WINDOW;
	if (bpf_probe_read_kernel(b->pkt, PT_EXPR_WINDOW, l3)) {
		got = 64;
		if (bpf_probe_read_kernel(b->pkt, 64, l3))
			return false;
	}
	__u64 avail = end - l3;
	if (avail < got)
		got = avail;
	b->wirelen = expr_wirelen(b);
	b->caplen = got < b->wirelen ? got : b->wirelen;
	return b->caplen >= 20;
}

/* Writes the addresses and ports of a tuple over the packet in the buffer (IPv4 or IPv6 as in family):
 * the packet as it looks on the other side of a NAT. */
static __always_inline void expr_set_tuple(struct expr_buf *b, __u8 family, const __u8 *saddr, const __u8 *daddr,
					   __u16 sport, __u16 dport)
{
	__u32 l4;
	if (family == 4) {
		for (int i = 0; i < 4; i++) {
			b->pkt[12 + i] = saddr[i];
			b->pkt[16 + i] = daddr[i];
		}
		l4 = (b->pkt[0] & 0xf) * 4;
	} else {
		for (int i = 0; i < 16; i++) {
			b->pkt[8 + i] = saddr[i];
			b->pkt[24 + i] = daddr[i];
		}
		l4 = 40;
	}
	b->pkt[l4 & (PT_EXPR_WINDOW - 1)] = sport >> 8;
	b->pkt[(l4 + 1) & (PT_EXPR_WINDOW - 1)] = sport;
	b->pkt[(l4 + 2) & (PT_EXPR_WINDOW - 1)] = dport >> 8;
	b->pkt[(l4 + 3) & (PT_EXPR_WINDOW - 1)] = dport;
}

/* A packet built from a socket record's tuple (no packet to read): IP and TCP or UDP headers, the
 * record's flags, sequence numbers and TTL. In the direction asked (reverse: remote to local). */
static __always_inline struct expr_buf *expr_synthesize(const struct pathtrace_record *r, bool reverse)
{
	struct expr_buf *b = expr_buf();
	if (!b)
		return 0;
	__builtin_memset(b->pkt, 0, 64);
	__u32 l4;
	if (r->family == 4) {
		b->pkt[0] = 0x45;
		b->pkt[8] = r->ttl ? r->ttl : 64;
		b->pkt[9] = r->l4proto;
		l4 = 20;
	} else {
		b->pkt[0] = 0x60;
		b->pkt[6] = r->l4proto;
		b->pkt[7] = r->ttl ? r->ttl : 64;
		l4 = 40;
	}
	__u32 hlen = r->l4proto == IPPROTO_TCP ? 20 : 8;
	__u32 wire = l4 + hlen + r->len;
	if (r->family == 4) {
		b->pkt[2] = wire >> 8;
		b->pkt[3] = wire;
	} else {
		b->pkt[4] = (wire - 40) >> 8;
		b->pkt[5] = wire - 40;
	}
	if (reverse)
		expr_set_tuple(b, r->family, r->daddr, r->saddr, r->dport, r->sport);
	else
		expr_set_tuple(b, r->family, r->saddr, r->daddr, r->sport, r->dport);
	if (r->l4proto == IPPROTO_TCP) {
		__u8 *t = b->pkt + (l4 & 0x3f);
		t[4] = r->seq >> 24;
		t[5] = r->seq >> 16;
		t[6] = r->seq >> 8;
		t[7] = r->seq;
		t[8] = r->ack >> 24;
		t[9] = r->ack >> 16;
		t[10] = r->ack >> 8;
		t[11] = r->ack;
		t[12] = 5 << 4;
		t[13] = r->tcp_flags;
	} else {
		__u32 ulen = 8 + r->len;
		b->pkt[(l4 + 4) & 0x3f] = ulen >> 8;
		b->pkt[(l4 + 5) & 0x3f] = ulen;
	}
	b->caplen = l4 + hlen;
	b->wirelen = wire;
	return b;
}

#endif
