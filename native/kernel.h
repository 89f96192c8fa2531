// What the running kernel offers, read from its BTF and by feature probes.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <linux/bpf.h>

namespace pathtrace {

// BPF_PROG_TYPE_NETFILTER (uapi value 32) came with Linux 6.4; Debian 12's
// linux-libc-dev headers predate it, libbpf and the kernel do not.
constexpr auto kProgTypeNetfilter = static_cast<enum bpf_prog_type>(32);

struct KernelFeatures {
  bool btf = false;              // /sys/kernel/btf/vmlinux loads
  bool netfilter_links = false;  // BPF_PROG_TYPE_NETFILTER (Linux >= 6.4)
  std::string btf_error;
};

KernelFeatures probe_kernel();

// strerror's text for an errno of either sign.
std::string errno_text(int err);

// Whether the kernel has the BTF-typed tracepoint `name` (e.g. "kfree_skb").
bool has_tracepoint(const std::string &name);

// Arguments of the BTF-typed tracepoint `name` (its probe's leading context
// pointer not counted), or -1 when the kernel has no such tracepoint.
int tracepoint_arity(const std::string &name);

// Whether the kernel's BTF has the function `name`, in vmlinux or in the BTF of
// `module` (when loaded); its parameters' names go to *params.
bool kernel_function(const std::string &name, const std::string &module, std::vector<std::string> *params);

// Enumerators of a kernel enum, from BTF: {name, value}. Empty if unknown.
std::vector<std::pair<std::string, int64_t>> kernel_enum(const std::string &name);
// Whether the kernel has the bpf_loop helper (5.17+, or backported): BPF_FUNC_loop in its BTF.
bool kernel_has_bpf_loop();

// Network devices {ifindex, name} of the namespace at netns_path ("" = own).
std::vector<std::pair<unsigned, std::string>> interfaces(const std::string &netns_path, std::string *error);

// Contents of files read from a thread inside the namespace at netns_path
// ("" = own): /proc/thread-self/net/... then shows that namespace. A file that
// cannot be read gives "".
std::vector<std::string> read_in_netns(const std::string &netns_path, const std::vector<std::string> &files,
                                       std::string *error);

// A netlink socket, opened in the namespace at netns_path, subscribed to nftables' change
// notifications (NFNLGRP_NFTABLES): every change of the ruleset (nft, iptables-nft, set
// elements) sends messages to it; counters moving do not. Non-blocking; -errno on failure.
int nftables_watch(const std::string &netns_path, std::string *error);

// Reads what the socket holds: the number of messages (a lost one, ENOBUFS, counts too).
int nftables_changes(int fd);

}  // namespace pathtrace
