#include "device_programs.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstdio>

#include "in_netns.h"

namespace pathtrace {
namespace {

// tcx's attach types came with Linux 6.6 (uapi values 46 and 47); Debian 12's linux-libc-dev headers predate
// them, libbpf and the kernel do not.
constexpr auto kTcxIngress = static_cast<enum bpf_attach_type>(46);
constexpr auto kTcxEgress = static_cast<enum bpf_attach_type>(47);

DeviceProgram named(const std::string &attach, uint32_t id) {
  DeviceProgram p{attach, id, "", ""};
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return p;  // gone since the query, or not ours to open: its id still names it
  struct bpf_prog_info info = {};
  __u32 len = sizeof(info);
  if (bpf_prog_get_info_by_fd(fd, &info, &len) == 0) {
    p.name = info.name;
    char hex[2 * BPF_TAG_SIZE + 1];
    for (int i = 0; i < BPF_TAG_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", info.tag[i]);
    p.tag = hex;
  }
  close(fd);
  return p;
}

}  // namespace

std::vector<DeviceProgram> device_programs(const std::string &netns_path, unsigned ifindex, std::string *error) {
  std::vector<DeviceProgram> out;
  // The queries name the device by its index in the caller's namespace: they run inside the traced one.
  run_in_netns(
      netns_path,
      [&] {
        LIBBPF_OPTS(bpf_xdp_query_opts, xdp);
        if (bpf_xdp_query(ifindex, 0, &xdp) == 0) {
          if (xdp.skb_prog_id) out.push_back(named("xdp-generic", xdp.skb_prog_id));
          if (xdp.drv_prog_id) out.push_back(named("xdp-native", xdp.drv_prog_id));
          if (xdp.hw_prog_id) out.push_back(named("xdp-offload", xdp.hw_prog_id));
        }
        for (auto [type, attach] : {std::pair{kTcxIngress, "tcx-ingress"}, std::pair{kTcxEgress, "tcx-egress"}}) {
          __u32 ids[64];
          LIBBPF_OPTS(bpf_prog_query_opts, q, .prog_ids = ids, .count = 64);
          if (bpf_prog_query_opts(ifindex, type, &q) != 0) continue;  // no tcx on this kernel (EINVAL)
          for (__u32 i = 0; i < q.count && i < 64; i++) out.push_back(named(attach, ids[i]));
        }
        return 0;
      },
      error);
  return out;
}

}  // namespace pathtrace
