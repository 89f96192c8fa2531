#include "kernel.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <sstream>
#include <sys/socket.h>
#include <unistd.h>

#include "in_netns.h"

namespace pathtrace {

namespace {
// Loaded once: the kernel's BTF does not change while we run.
const struct btf *vmlinux_btf(std::string *error = nullptr) {
  static struct btf *btf = nullptr;
  static std::string load_error;
  static bool tried = false;
  if (!tried) {
    tried = true;
    btf = btf__load_vmlinux_btf();
    if (!btf) load_error = "cannot load the kernel's BTF (CONFIG_DEBUG_INFO_BTF, /sys/kernel/btf/vmlinux)";
  }
  if (error) *error = load_error;
  return btf;
}
}  // namespace

std::string errno_text(int err) {
  err = err < 0 ? -err : err;
  // The kernel's own ENOTSUPP, which libc does not name: what BPF says of an attach this kernel cannot do.
  if (err == 524) return "not supported by this kernel (ENOTSUPP)";
  return std::string(strerror(err));
}

KernelFeatures probe_kernel() {
  KernelFeatures f;
  f.btf = vmlinux_btf(&f.btf_error) != nullptr;
  f.netfilter_links = libbpf_probe_bpf_prog_type(kProgTypeNetfilter, nullptr) == 1;
  return f;
}

bool has_tracepoint(const std::string &name) {
  const struct btf *btf = vmlinux_btf();
  return btf && btf__find_by_name_kind(btf, ("btf_trace_" + name).c_str(), BTF_KIND_TYPEDEF) > 0;
}

int tracepoint_arity(const std::string &name) {
  const struct btf *btf = vmlinux_btf();
  if (!btf) return -1;
  int id = btf__find_by_name_kind(btf, ("btf_trace_" + name).c_str(), BTF_KIND_TYPEDEF);
  if (id <= 0) return -1;
  const struct btf_type *t = btf__type_by_id(btf, id);  // typedef -> pointer -> function prototype
  while (t && (btf_is_typedef(t) || btf_is_ptr(t))) t = btf__type_by_id(btf, t->type);
  return t && btf_is_func_proto(t) ? btf_vlen(t) - 1 : -1;
}

namespace {
bool find_function(const struct btf *btf, const std::string &name, std::vector<std::string> *params) {
  int id = btf__find_by_name_kind(btf, name.c_str(), BTF_KIND_FUNC);
  if (id <= 0) return false;
  const struct btf_type *proto = btf__type_by_id(btf, btf__type_by_id(btf, id)->type);
  if (params && proto && btf_is_func_proto(proto)) {
    const struct btf_param *p = btf_params(proto);
    for (int i = 0; i < btf_vlen(proto); i++) params->push_back(btf__name_by_offset(btf, p[i].name_off));
  }
  return true;
}
}  // namespace

bool kernel_function(const std::string &name, const std::string &module, std::vector<std::string> *params) {
  const struct btf *vmlinux = vmlinux_btf();
  if (!vmlinux) return false;
  if (find_function(vmlinux, name, params)) return true;
  if (module.empty()) return false;
  // Module BTF exists since 5.11 (CONFIG_DEBUG_INFO_BTF_MODULES), and only while the module is loaded.
  struct btf *mod = btf__load_module_btf(module.c_str(), const_cast<struct btf *>(vmlinux));
  if (!mod) return false;
  bool found = find_function(mod, name, params);
  btf__free(mod);
  return found;
}

std::vector<std::pair<std::string, int64_t>> kernel_enum(const std::string &name) {
  std::vector<std::pair<std::string, int64_t>> out;
  const struct btf *btf = vmlinux_btf();
  if (!btf) return out;
  int id = btf__find_by_name_kind(btf, name.c_str(), BTF_KIND_ENUM);
  if (id > 0) {
    const struct btf_type *t = btf__type_by_id(btf, id);
    const struct btf_enum *e = btf_enum(t);
    for (int i = 0; i < btf_vlen(t); i++) out.emplace_back(btf__name_by_offset(btf, e[i].name_off), e[i].val);
    return out;
  }
  id = btf__find_by_name_kind(btf, name.c_str(), BTF_KIND_ENUM64);
  if (id > 0) {
    const struct btf_type *t = btf__type_by_id(btf, id);
    const struct btf_enum64 *e = btf_enum64(t);
    for (int i = 0; i < btf_vlen(t); i++)
      out.emplace_back(btf__name_by_offset(btf, e[i].name_off), (int64_t)btf_enum64_value(&e[i]));
  }
  return out;
}

bool kernel_has_bpf_loop() {
  for (const auto &[name, value] : kernel_enum("bpf_func_id"))
    if (name == "BPF_FUNC_loop") return true;
  return false;
}

std::vector<std::pair<unsigned, std::string>> interfaces(const std::string &netns_path, std::string *error) {
  std::vector<std::pair<unsigned, std::string>> out;
  run_in_netns(
      netns_path,
      [&] {
        struct if_nameindex *list = if_nameindex();
        if (!list) return -1;
        for (struct if_nameindex *i = list; i->if_index; i++) out.emplace_back(i->if_index, i->if_name);
        if_freenameindex(list);
        return 0;
      },
      error);
  return out;
}

std::vector<std::string> read_in_netns(const std::string &netns_path, const std::vector<std::string> &files,
                                       std::string *error) {
  std::vector<std::string> out(files.size());
  run_in_netns(
      netns_path,
      [&] {
        for (size_t i = 0; i < files.size(); i++) {
          std::ifstream in(files[i]);
          std::ostringstream text;
          text << in.rdbuf();
          out[i] = text.str();
        }
        return 0;
      },
      error);
  return out;
}

int nftables_watch(const std::string &netns_path, std::string *error) {
  // A socket belongs to the namespace it was created in, whichever thread reads it later.
  return run_in_netns(
      netns_path,
      [&] {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_NETFILTER);
        if (fd < 0) return -errno;
        struct sockaddr_nl addr = {};
        addr.nl_family = AF_NETLINK;
        int group = NFNLGRP_NFTABLES;
        if (bind(fd, reinterpret_cast<struct sockaddr *>(&addr), sizeof(addr)) != 0 ||
            setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) != 0) {
          int err = errno;
          close(fd);
          *error = std::string("cannot watch the ruleset for changes: ") + strerror(err);
          return -err;
        }
        return fd;
      },
      error);
}

int nftables_changes(int fd) {
  static char buf[1 << 16];
  int n = 0;
  for (;;) {
    ssize_t len = recv(fd, buf, sizeof(buf), 0);
    if (len > 0) {
      int left = static_cast<int>(len);
      for (auto *h = reinterpret_cast<struct nlmsghdr *>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) n++;
      continue;
    }
    if (len < 0 && errno == ENOBUFS) {
      n++;
      continue;
    }  // the socket overflowed: changes were lost
    if (len < 0 && errno == EINTR) continue;
    return n;
  }
}

}  // namespace pathtrace
