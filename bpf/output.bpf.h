/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The output of every BPF object of pathtrace: the events ring and the count of records that did not fit, and a
 * record's beginning. The addon creates them with the main object (pathtrace.bpf.c) and hands their fds to the
 * others (device_verdicts.bpf.c), so that all records come through one ring.
 */
#ifndef PATHTRACE_OUTPUT_BPF_H
#define PATHTRACE_OUTPUT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "record.h"
#include "kernel.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by the addon before load */
} events SEC(".maps");

/* Records that did not fit in their ring buffer, per CPU: events (PT_LOST_EVENTS)
 * and packet bytes (PT_LOST_BYTES: the packet is then written without them). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* The time is taken once a record is wanted: a filtered-out event costs no clock read. */
static __always_inline void stamp(struct pathtrace_record *r)
{
	if (!r->ts_ns)
		r->ts_ns = bpf_ktime_get_ns();
}

static __always_inline void emit(struct pathtrace_record *r)
{
	stamp(r);
	/* No wakeups: user space drains the ring on its own timer, in batches. */
	if (bpf_ringbuf_output(&events, r, sizeof(*r), BPF_RB_NO_WAKEUP))
		count_in(&lost, PT_LOST_EVENTS);
}

static __always_inline void init(struct pathtrace_record *r, __u16 point, const struct sk_buff *skb)
{
	__builtin_memset(r, 0, sizeof(*r));
	r->point = point;
	r->hook = PT_HOOK_NONE;
	r->skb = (__u64)skb;
}

#endif
