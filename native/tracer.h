// Owns pathtrace's kernel objects: the BPF skeleton, its links and the ring
// buffer. Knows nothing of JavaScript; native/addon.cc is the binding.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "drain.h"
#include "record.h"

struct pathtrace_bpf;
struct device_verdicts_bpf;
struct ring_buffer;
struct bpf_link;

namespace pathtrace {

struct PointStatus {
  std::string point;  // tracepoint name
  bool attached = false;
  std::string error;  // why not, when not
};

struct NetfilterRequest {
  int pf;        // NFPROTO_IPV4 / NFPROTO_IPV6
  int hook;      // NF_INET_*
  int slot;      // probe program, 0 .. PT_NF_SLOTS-1
  int priority;  // first priority to try
  int step;      // on EBUSY try priority + step, up to max_tries times
  int max_tries;
};

struct NetfilterResult {
  int priority = 0;  // the priority attached at
  int error = 0;     // errno when not attached
  int link = 0;      // id for detach_link, when attached
};

// A program on a device whose verdicts are to be traced: an XDP program, or a tc program that returns a tc action
// (a tcx program, a cls_bpf filter in direct-action mode).
struct VerdictTarget {
  uint32_t id = 0;
  bool xdp = false;
};

struct VerdictStatus {
  uint32_t id = 0;
  bool attached = false;
  std::string error;     // why not, when not
  bool refused = false;  // the kernel refused the tracing program itself (no trampolines): so will it for any other
};

// How the netfilter hooks are traced: BPF netfilter links (6.4+), trampolines
// on nf_hook_slow and the table evaluators (older kernels), kprobes on the same
// (where trampolines are refused), or not at all.
enum class NetfilterMode { None, Links, Trampolines, Kprobes };

// libbpf's messages: kept for the error of a failed load, and also printed to
// stderr when debug is set (--debug).
void set_libbpf_debug(bool debug);

class Tracer {
 public:
  // Opens and loads the BPF object with this filter. Throws std::runtime_error
  // whose text says which program the kernel refused and why.
  // skip: tracepoints not to load (the user's --points).
  Tracer(const pathtrace_filter &filter, const std::vector<pathtrace_expr_insn> &expression, uint32_t ring_bytes,
         NetfilterMode netfilter, const std::vector<std::string> &skip);
  // Whether kfree_skb reports drop reasons on this kernel (5.17+).
  bool drop_reasons() const { return drop_reasons_; }
  // The mechanism loaded: the one asked for, or the next one down when the kernel refused it.
  NetfilterMode netfilter_mode() const { return netfilter_; }
  // Copies packet byte records (struct pathtrace_bytes, header + caplen, each padded to 8) into out.
  size_t consume_bytes(uint8_t *out, size_t max);
  ~Tracer();
  Tracer(const Tracer &) = delete;
  Tracer &operator=(const Tracer &) = delete;

  std::vector<PointStatus> attach_tracepoints();
  // Attaches netfilter probes inside the netns at netns_path ("" = own).
  std::vector<NetfilterResult> attach_netfilter(const std::string &netns_path,
                                                const std::vector<NetfilterRequest> &requests, std::string *error);
  // Detaches one netfilter link by the id attach_netfilter gave; false if unknown.
  bool detach_link(int id);
  // Traces the verdicts of exactly these programs: an fexit program on each one not traced yet (a load of
  // device_verdicts.bpf.c of its own), and those traced but no longer listed let go. The status of each target.
  std::vector<VerdictStatus> trace_verdicts(const std::vector<VerdictTarget> &targets);
  // Copies up to max records into out, oldest first; returns how many.
  size_t consume(pathtrace_record *out, size_t max) { return drain_ ? drain_->take(out, max) : 0; }
  uint64_t lost_events() const;
  void close();

 private:
  // Opens the skeleton, sets the filter and sizes, loads; 0 or -errno.
  int open_and_load(const pathtrace_filter &filter, const std::vector<pathtrace_expr_insn> &expression,
                    uint32_t ring_bytes, NetfilterMode netfilter, const std::vector<std::string> &skip);
  void choose_variants();
  void choose_hook_tracers(NetfilterMode mode);
  static int on_bytes(void *ctx, void *data, size_t size);
  // Loads and attaches the fexit program on one target; 0 or -errno, *why the detail.
  int trace_verdict(const VerdictTarget &target, std::string *why, bool *refused);

  pathtrace_bpf *skel_ = nullptr;
  std::unique_ptr<Drain> drain_;  // the event ring, emptied on a thread of its own
  ring_buffer *bytes_ring_ = nullptr;
  uint8_t *bytes_out_ = nullptr;
  size_t bytes_len_ = 0, bytes_max_ = 0;
  std::vector<bpf_link *> links_;              // tracepoints
  std::map<int, bpf_link *> netfilter_links_;  // by id, so that probes can be re-placed
  int next_link_id_ = 1;
  std::vector<PointStatus> skipped_;  // points the kernel lacks
  bool drop_reasons_ = true;
  NetfilterMode netfilter_ = NetfilterMode::None;
  std::map<std::string, std::string> refused_;  // table evaluators the kernel refused, and why
  // What the verdicts' objects are loaded with: the main object's filter and expression.
  std::unique_ptr<pathtrace_filter> filter_;
  std::vector<pathtrace_expr_insn> expression_;
  struct Traced {
    device_verdicts_bpf *skel;
    bpf_link *link;
  };
  std::map<uint32_t, Traced> verdicts_;  // by the traced program's id
};

// The BPF interpreter's answer to the expression (1 match, 0 not, -1 could not run) for each IP packet,
// through BPF_PROG_TEST_RUN of the object's self-test program: what the test holding it to tcpdump's
// answers asks. Throws when the program cannot load.
std::vector<int> test_expression(const std::vector<pathtrace_expr_insn> &program,
                                 const std::vector<std::vector<uint8_t>> &packets);

}  // namespace pathtrace
