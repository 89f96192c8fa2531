// SPDX-License-Identifier: GPL-2.0
/*
 * The verdicts of the XDP and tc programs on the traced namespace's devices, seen as each returns: an fexit
 * program on the program itself (BPF trampolines), which the kernel gives its context as the kernel's type
 * (struct xdp_buff, struct sk_buff) and its return value. One target per load: the addon opens this object once
 * per program it traces (native/tracer.cc, trace_verdicts), sets the same filter in .rodata as the main object's,
 * and hands it the main object's events ring and lost map, so that these records come with the others.
 *
 * A record only where the verdict ends the packet's way up: XDP, anything but XDP_PASS (XDP_DROP and
 * XDP_ABORTED drop it; XDP_TX and XDP_REDIRECT send it elsewhere, and when that fails the kernel frees it as a
 * drop the verdict explains); tc, TC_ACT_SHOT, the one verdict that drops (TC_ACT_STOLEN, QUEUED and TRAP hand
 * the packet to the program's care, TC_ACT_REDIRECT to another device: none of them is a drop). Nothing here
 * changes a packet or a verdict: fexit programs only watch.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "record.h"
#include "kernel.bpf.h"
#include "parse.bpf.h"
#include "output.bpf.h"
#include "filter.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* The program traced, set by the addon before load: each record names it by id (location) and name (comm). */
const volatile __u32 target_id = 0;
const volatile char target_name[16] = {};

#define TC_ACT_SHOT  2 /* uapi's pkt_cls.h: not in BTF */
#define ETH_HLEN     14
#define ETH_P_8021Q  0x8100
#define ETH_P_8021AD 0x88A8

static __always_inline void name_target(struct pathtrace_record *r)
{
	r->location = target_id;
	if (r->inner_proto) /* an ICMP error's quoted destination shares comm's bytes: the id names it alone */
		return;
	for (int i = 0; i < sizeof(r->comm); i++)
		r->comm[i] = target_name[i];
}

/* The IP header of the frame at data (up to end) on dev: after its Ethernet header and one VLAN tag, or at once on
 * a device without a link-layer header; NULL when it is not IP. */
static __always_inline const unsigned char *xdp_nh(const unsigned char *data, const unsigned char *end,
						   const struct net_device *dev)
{
	__u8 eth[ETH_HLEN + 4];
	if (!dev->hard_header_len) {
		__u8 v;
		if (data >= end || bpf_probe_read_kernel(&v, 1, data))
			return 0;
		return (v >> 4) == 4 || (v >> 4) == 6 ? data : 0;
	}
	if (data + sizeof(eth) > end || bpf_probe_read_kernel(eth, sizeof(eth), data))
		return 0;
	__u16 proto = ((__u16)eth[12] << 8) | eth[13];
	const unsigned char *nh = data + ETH_HLEN;
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		proto = ((__u16)eth[16] << 8) | eth[17];
		nh += 4;
	}
	return proto == ETH_P_IP || proto == ETH_P_IPV6 ? nh : 0;
}

SEC("fexit/xdp")
int BPF_PROG(xdp_verdict, struct xdp_buff *xdp, int ret)
{
	struct pathtrace_record r;
	if (ret == XDP_PASS)
		return 0;
	struct net_device *dev = xdp->rxq->dev;
	__u32 netns = dev_netns(dev);
	if (netns_unwanted(netns))
		return 0;
	const unsigned char *data = xdp->data, *end = xdp->data_end;
	const unsigned char *nh = xdp_nh(data, end, dev);
	/* No skb (native mode has none yet; generic mode's xdp_buff does not point to it): the correlator joins the
	 * verdict to the free that follows by the packet's content. */
	if (!nh || !packet_record_at(&r, PT_POINT_XDP_VERDICT, 0, nh, end, 0, netns))
		return 0;
	r.ifindex = dev->ifindex;
	r.aux = ret;
	name_target(&r);
	emit(&r);
	return 0;
}

SEC("fexit/tc")
int BPF_PROG(tc_verdict, struct sk_buff *skb, int ret)
{
	struct pathtrace_record r;
	if (ret != TC_ACT_SHOT || !skb_is_ip(skb))
		return 0;
	struct net_device *dev = skb->dev;
	__u32 netns = dev_netns(dev);
	if (netns_unwanted(netns))
		return 0;
	/* On receive the network header was set before tc runs; on transmit IP set it. */
	const unsigned char *nh = skb_nh(skb);
	if (!nh || !packet_record_at(&r, PT_POINT_TC_VERDICT, skb, nh, skb_head_end(skb), skb->_nfct, netns))
		return 0;
	r.ifindex = dev->ifindex;
	r.probe = BPF_CORE_READ_BITFIELD_PROBED(skb, tc_at_ingress) ? PT_AT_INGRESS : PT_AT_EGRESS;
	r.aux = ret;
	name_target(&r);
	emit(&r);
	return 0;
}
