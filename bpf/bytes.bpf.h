/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A packet's bytes for --write: a ring of their own beside the events (struct pathtrace_bytes), written once
 * per packet at its first point when filter.snaplen is set.
 */
#ifndef PATHTRACE_BYTES_BPF_H
#define PATHTRACE_BYTES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "record.h"
#include "kernel.bpf.h"
#include "output.bpf.h"
#include "filter.bpf.h"

/* Packet bytes for --write (only used when filter.snaplen is set). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* resized by the addon */
} packet_bytes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pathtrace_bytes);
} bytes_scratch SEC(".maps");

/* ---- a packet's bytes, for --write -------------------------------------- */

/* The packet's bytes from its IP header (l3) up to head_end, the end of the skb's linear data. */
static __always_inline void emit_bytes_to(const unsigned char *l3, const unsigned char *head_end,
					  struct pathtrace_record *r)
{
	if (!filter.snaplen)
		return;
	/* Once per packet: its first point (the journey's) is the one user space uses. */
	struct follow *f = followed_slot(r);
	if (f && f->bytes_sent)
		return;
	stamp(r);
	__u32 zero = 0;
	struct pathtrace_bytes *b = bpf_map_lookup_elem(&bytes_scratch, &zero);
	if (!b)
		return;
	long avail = (long)head_end - (long)l3;
	__u32 caplen = filter.snaplen;
	if (avail < caplen)
		caplen = avail > 0 ? avail : 0;
	if (caplen > PT_MAX_SNAPLEN)
		caplen = PT_MAX_SNAPLEN;
	if (caplen == 0 || bpf_probe_read_kernel(b->data, caplen, l3))
		return;
	b->ts_ns = r->ts_ns;
	b->skb = r->skb;
	b->caplen = caplen;
	b->point = r->point;
	__u8 first = b->data[0];
	if ((first >> 4) == 4 && caplen >= 4)
		b->wirelen = ((__u16)b->data[2] << 8) | b->data[3];
	else if ((first >> 4) == 6 && caplen >= 6)
		b->wirelen = (((__u16)b->data[4] << 8) | b->data[5]) + sizeof(struct ipv6hdr);
	else
		b->wirelen = caplen;
	if (bpf_ringbuf_output(&packet_bytes, b, PT_BYTES_HEADER + caplen, BPF_RB_NO_WAKEUP))
		count_in(&lost, PT_LOST_BYTES);
	else if (f)
		f->bytes_sent = 1;
}

static __always_inline void emit_bytes(const struct sk_buff *skb, const unsigned char *l3, struct pathtrace_record *r)
{
	emit_bytes_to(l3, skb_head_end(skb), r);
}

#endif /* PATHTRACE_BYTES_BPF_H */
