// Opening a BPF skeleton for the running kernel: shared by the trace's objects (tracer.cc) and the agent's.
#pragma once
#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdlib>

#include "kernel.h"

namespace pathtrace {

// The BPF object for this kernel: the one built without bpf_loop where the kernel lacks it (its expression
// interpreter's callback would keep a kernel before 5.13 from loading the other). Same programs, maps and
// variables, so one skeleton serves both: only the ELF it opens differs. For each object: the trace's, the
// verdicts', the agent's.
template <typename Skel>
Skel *open_for_kernel(Skel *(*open)(), int (*create)(Skel *), const void *(*compat_elf)(size_t *),
                      void (*destroy)(Skel *)) {
  if (kernel_has_bpf_loop()) return open();
  auto *skel = static_cast<Skel *>(calloc(1, sizeof(Skel)));
  if (!skel) return nullptr;
  if (create(skel) == 0) {
    skel->skeleton->data = compat_elf(&skel->skeleton->data_sz);
    if (bpf_object__open_skeleton(skel->skeleton, nullptr) == 0) return skel;
  }
  int err = errno;
  destroy(skel);
  errno = err;
  return nullptr;
}

}  // namespace pathtrace
