// BPF programs attached to a network device: its XDP programs (one per mode) and its tcx programs (per
// direction), with their names, for naming what dropped a packet there. Read-only.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pathtrace {

struct DeviceProgram {
  std::string attach;  // xdp-generic, xdp-native, xdp-offload, tcx-ingress, tcx-egress
  uint32_t id = 0;
  std::string name;  // the program's name (BPF_OBJ_NAME_LEN: 15 characters)
  std::string tag;   // hex, as bpftool prints it
};

// The programs on device ifindex of the namespace at netns_path ("" = own). A kernel without tcx
// (< 6.6) has no tcx programs to list; an error entering the namespace goes to *error.
std::vector<DeviceProgram> device_programs(const std::string &netns_path, unsigned ifindex, std::string *error);

}  // namespace pathtrace
