#include "tracer.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <csignal>
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <functional>
#include <pthread.h>
#include <stdexcept>
#include <thread>
#include <unistd.h>

#include "in_netns.h"
#include "kernel.h"
#include "skeleton.h"
#include "device_verdicts.skel.h"
#include "device_verdicts_compat.skel.h"
#include "pathtrace.skel.h"
#include "pathtrace_compat.skel.h"

namespace pathtrace {

namespace {

pathtrace_bpf *open_skeleton() {
  return open_for_kernel(pathtrace_bpf__open, pathtrace_bpf__create_skeleton, pathtrace_compat_bpf__elf_bytes,
                         pathtrace_bpf__destroy);
}

device_verdicts_bpf *open_verdicts_skeleton() {
  return open_for_kernel(device_verdicts_bpf__open, device_verdicts_bpf__create_skeleton,
                         device_verdicts_compat_bpf__elf_bytes, device_verdicts_bpf__destroy);
}

// A program's name (bpf_prog_info's, up to 15 characters) and its function's in its BTF, which a tracing
// program attaches by; the function is "" when the program was loaded without BTF.
std::pair<std::string, std::string> program_names(int fd) {
  struct bpf_func_info entry = {};
  struct bpf_prog_info info = {};
  info.nr_func_info = 1;  // the first is the program's entry
  info.func_info_rec_size = sizeof(entry);
  info.func_info = reinterpret_cast<uintptr_t>(&entry);
  __u32 len = sizeof(info);
  if (bpf_prog_get_info_by_fd(fd, &info, &len) != 0) return {"", ""};
  std::string function;
  struct btf *btf = info.btf_id && info.nr_func_info ? btf__load_from_kernel_by_id(info.btf_id) : nullptr;
  if (btf) {
    const struct btf_type *t = btf__type_by_id(btf, entry.type_id);
    if (t) function = btf__name_by_offset(btf, t->name_off);
    btf__free(btf);
  }
  return {info.name, function};
}

// Runs a load on a thread of its own that blocks every signal: a signal during verification makes it fail with
// EAGAIN (a profiler's SIGPROF aimed at the JS thread, SIGCHLD of the nft children). Its result.
int unsignalled(const std::function<int()> &load) {
  int err = 0;
  std::thread loader([&] {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    err = load();
  });
  loader.join();
  return err;
}

// A negative return from the ring buffer callback stops consumption after
// the current sample (which libbpf counts as consumed): "batch full".
constexpr int kBatchFull = -1000;
// Records queued between the drain thread and JavaScript at most (64 MiB): about a second of a busy
// port's events, what the event loop may fall behind by while the JIT warms up or a GC runs.
constexpr size_t kMaxQueuedRecords = (64u << 20) / sizeof(pathtrace_record);

// The point a program attaches to, from its section name: a tracepoint's name
// ("kfree_skb"), or the section of a trampoline or kprobe ("fexit/nft_do_chain"); "" for netfilter links.
std::string point_of(const bpf_program *prog) {
  std::string sec = bpf_program__section_name(prog);
  const std::string tp = "tp_btf/";
  if (sec.rfind(tp, 0) == 0) return sec.substr(tp.size());
  for (const char *kind : {"fentry/", "fexit/", "kprobe/", "kretprobe/"})
    if (sec.rfind(kind, 0) == 0) return sec;
  return "";
}

// Programs of one tracepoint for different argument lists, most arguments
// first: the first whose arguments the kernel's tracepoint has is loaded.
struct Variant {
  const char *prog, *tracepoint;
  int args;
};
constexpr Variant kVariants[] = {
    {"on_kfree_skb", "kfree_skb", 3},
    {"on_kfree_skb_noreason", "kfree_skb", 2},
    {"on_consume_skb", "consume_skb", 2},
    {"on_consume_skb_noloc", "consume_skb", 1},
};

// The programs that trace netfilter without links: trampolines, or kprobes where
// those are refused; and where each one's function lives.
struct HookTracer {
  const char *prog, *function, *module;
  NetfilterMode mode;
};
constexpr NetfilterMode T = NetfilterMode::Trampolines, K = NetfilterMode::Kprobes;
constexpr HookTracer kHookTracers[] = {
    {"nf_hook_slow_entry", "nf_hook_slow", "", T},
    {"nf_hook_slow_exit", "nf_hook_slow", "", T},
    {"nft_do_chain_entry", "nft_do_chain", "nf_tables", T},
    {"nft_do_chain_exit", "nft_do_chain", "nf_tables", T},
    {"ipt_do_table_exit", "ipt_do_table", "ip_tables", T},
    {"ip6t_do_table_exit", "ip6t_do_table", "ip6_tables", T},
    {"kp_nf_hook_slow", "nf_hook_slow", "", K},
    {"kr_nf_hook_slow", "nf_hook_slow", "", K},
    {"kp_nft_do_chain", "nft_do_chain", "nf_tables", K},
    {"kr_nft_do_chain", "nft_do_chain", "nf_tables", K},
    {"kp_ipt_do_table", "ipt_do_table", "ip_tables", K},
    {"kr_ipt_do_table", "ipt_do_table", "ip_tables", K},
    {"kp_ip6t_do_table", "ip6t_do_table", "ip6_tables", K},
    {"kr_ip6t_do_table", "ip6t_do_table", "ip6_tables", K},
};

const HookTracer *hook_tracer(const std::string &prog) {
  for (const HookTracer &t : kHookTracers)
    if (prog == t.prog) return &t;
  return nullptr;
}

// Why a function cannot be traced, and what the user loses.
std::string function_missing(const HookTracer &t) {
  std::string mod = t.module;
  if (mod.empty()) return std::string(t.function) + " is not in this kernel's BTF";
  if (access(("/sys/module/" + mod).c_str(), F_OK) != 0)
    return mod + " is not loaded: chains of its tables made later are named from the ruleset alone";
  return "no BTF for module " + mod + " (Linux < 5.11): the chains of its tables are named from the ruleset alone";
}

const char *mode_name(NetfilterMode m) {
  return m == NetfilterMode::Trampolines ? "trampolines" : m == NetfilterMode::Kprobes ? "kprobes" : "links";
}

// libbpf's messages of the current load (bounded), for the error of a failed one.
bool libbpf_debug = false;
std::string libbpf_log;

int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args) {
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, fmt, copy);  // a verifier log comes as one message
  va_end(copy);
  std::string text(n > 0 ? n : 0, '\0');
  if (n > 0) vsnprintf(text.data(), n + 1, fmt, args);
  if (libbpf_debug) fputs(text.c_str(), stderr);
  if (level != LIBBPF_DEBUG && libbpf_log.size() < (4 << 20)) libbpf_log += text;
  return 0;
}

// The program a failed load names ("prog 'X': BPF program load failed"), or "".
std::string refused_program(const std::string &log) {
  size_t at = log.rfind("BPF program load failed");
  size_t q1 = at == std::string::npos ? at : log.rfind("prog '", at);
  size_t q2 = q1 == std::string::npos ? q1 : log.find('\'', q1 + 6);
  return q2 == std::string::npos ? "" : log.substr(q1 + 6, q2 - q1 - 6);
}

// "program P: last lines of the verifier's log", from libbpf's messages of a failed load.
std::string load_failure(const std::string &log) {
  std::string prog = refused_program(log);
  std::vector<std::string> lines;
  size_t begin = log.rfind("-- BEGIN PROG LOAD LOG --"), end = log.rfind("-- END PROG LOAD LOG --");
  if (begin != std::string::npos && end != std::string::npos && end > begin) {
    std::string body = log.substr(begin, end - begin);
    size_t pos = body.find('\n');
    while (pos != std::string::npos) {
      size_t next = body.find('\n', pos + 1);
      std::string l = body.substr(pos + 1, (next == std::string::npos ? body.size() : next) - pos - 1);
      if (!l.empty() && l.rfind("processed ", 0) != 0) lines.push_back(l);
      pos = next;
    }
  }
  std::string out = prog.empty() ? "" : "program " + prog + " was refused";
  size_t from = lines.size() > 3 ? lines.size() - 3 : 0;
  for (size_t i = from; i < lines.size(); i++) out += (out.empty() ? "" : i == from ? ": " : " | ") + lines[i];
  return out;
}

bool is_netfilter(const bpf_program *prog) { return bpf_program__type(prog) == kProgTypeNetfilter; }

// The netfilter probe of a slot: NF_SLOT(n) in pathtrace.bpf.c names it nf_probe<n>.
bpf_program *nf_slot(pathtrace_bpf *skel, int slot) {
  if (slot < 0 || slot >= PT_NF_SLOTS) return nullptr;
  return bpf_object__find_program_by_name(skel->obj, ("nf_probe" + std::to_string(slot)).c_str());
}
}  // namespace

void set_libbpf_debug(bool debug) {
  libbpf_debug = debug;
  libbpf_set_print(on_libbpf_print);
}

Tracer::Tracer(const pathtrace_filter &filter, const std::vector<pathtrace_expr_insn> &expression, uint32_t ring_bytes,
               NetfilterMode netfilter, const std::vector<std::string> &skip)
    : filter_(std::make_unique<pathtrace_filter>(filter)), expression_(expression) {
  libbpf_set_print(on_libbpf_print);
  std::vector<std::string> refusals;  // of a whole mechanism, said in the end
  // A signal that still comes through the load's thread (unsignalled) is met by trying again.
  for (int attempt = 0;; attempt++) {
    libbpf_log.clear();
    int err = unsignalled([&] { return open_and_load(filter, expression, ring_bytes, netfilter, skip); });
    if (!err) break;
    std::string why = errno_text(err), detail = load_failure(libbpf_log);
    if (!detail.empty()) why += ": " + detail;
    std::string prog = refused_program(libbpf_log);
    close();
    skipped_.clear();
    if (err != -EAGAIN && (netfilter == NetfilterMode::Trampolines || netfilter == NetfilterMode::Kprobes)) {
      // A table evaluator refused: the rest without it. nf_hook_slow's refused: the next mechanism. Say why.
      const HookTracer *t = hook_tracer(prog);
      if (t && std::string(t->function) != "nf_hook_slow" && !refused_.count(prog)) {
        refused_[prog] = why;
      } else {
        refusals.push_back(std::string(mode_name(netfilter)) + " refused by this kernel: " + why);
        netfilter = netfilter == NetfilterMode::Trampolines ? NetfilterMode::Kprobes : NetfilterMode::None;
      }
      continue;
    }
    if (err != -EAGAIN || attempt == 4)
      throw std::runtime_error("cannot load the BPF programs: " + why +
                               " (pathtrace --debug shows libbpf's whole log)");
  }
  netfilter_ = netfilter;
  for (const std::string &r : refusals) skipped_.push_back({"netfilter " + r.substr(0, r.find(' ')), false, r});
  bytes_ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.packet_bytes), on_bytes, this, nullptr);
  if (!bytes_ring_) {
    int err = errno;
    close();
    throw std::runtime_error("cannot map the ring buffer: " + errno_text(err));
  }
  try {
    drain_ = std::make_unique<Drain>(bpf_map__fd(skel_->maps.events), kMaxQueuedRecords);
  } catch (...) {
    close();
    throw;
  }
}

int Tracer::open_and_load(const pathtrace_filter &filter, const std::vector<pathtrace_expr_insn> &expression,
                          uint32_t ring_bytes, NetfilterMode netfilter, const std::vector<std::string> &skip) {
  skel_ = open_skeleton();
  if (!skel_) return -errno;
  memcpy((void *)&skel_->rodata->filter, &filter, sizeof(filter));
  skel_->bss->expr.len = std::min<size_t>(expression.size(), PT_EXPR_MAX_INSNS);
  memcpy(skel_->bss->expr.insns, expression.data(), skel_->bss->expr.len * sizeof(pathtrace_expr_insn));
  bpf_map__set_max_entries(skel_->maps.events, ring_bytes);
  // Packet bytes only travel with --write; otherwise the ring stays minimal.
  bpf_map__set_max_entries(skel_->maps.packet_bytes, filter.snaplen ? ring_bytes : (uint32_t)sysconf(_SC_PAGESIZE));

  bpf_program__set_autoload(skel_->progs.expr_test, false);  // only for test_expression()
  // Leave out what this kernel cannot load, so that the rest still works.
  bpf_program *prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (is_netfilter(prog)) {
      if (netfilter != NetfilterMode::Links) bpf_program__set_autoload(prog, false);
      continue;
    }
    if (hook_tracer(bpf_program__name(prog))) continue;  // choose_hook_tracers
    std::string tp = point_of(prog);
    if (std::find(skip.begin(), skip.end(), tp) != skip.end()) {
      bpf_program__set_autoload(prog, false);
      continue;
    }
    if (!tp.empty() && !has_tracepoint(tp)) {
      bpf_program__set_autoload(prog, false);
      // Newer kernels tell a failed redirect through a map by xdp_redirect_err too: nothing is lost there.
      if (tp != "xdp_redirect_map_err") skipped_.push_back({tp, false, "this kernel has no tracepoint " + tp});
    }
  }

  choose_variants();
  choose_hook_tracers(netfilter);
  return pathtrace_bpf__load(skel_);
}

void Tracer::choose_variants() {
  for (const Variant &v : kVariants) {
    bpf_program *prog = bpf_object__find_program_by_name(skel_->obj, v.prog);
    if (!prog || !bpf_program__autoload(prog)) continue;
    int arity = tracepoint_arity(v.tracepoint);
    // Loaded: the first variant (with the most arguments) that the tracepoint's arguments cover.
    bool chosen = arity >= v.args;
    for (const Variant &w : kVariants)
      if (&w < &v && std::string(w.tracepoint) == v.tracepoint && arity >= w.args) chosen = false;
    if (!chosen) bpf_program__set_autoload(prog, false);
    if (chosen && std::string(v.tracepoint) == "kfree_skb") drop_reasons_ = v.args >= 3;
  }
}

void Tracer::choose_hook_tracers(NetfilterMode mode) {
  for (const HookTracer &t : kHookTracers) {
    bpf_program *prog = bpf_object__find_program_by_name(skel_->obj, t.prog);
    if (!prog) continue;
    bool wanted = t.mode == mode;
    std::vector<std::string> params;
    // The kprobes read the same structures with CO-RE: they too need the function's BTF.
    bool present = wanted && kernel_function(t.function, t.module, &params);
    auto refused = refused_.find(t.prog);
    bpf_program__set_autoload(prog, present && refused == refused_.end());
    if (wanted && !present) skipped_.push_back({point_of(prog), false, function_missing(t)});
    if (present && refused != refused_.end())
      skipped_.push_back(
          {point_of(prog), false,
           "refused by this kernel: " + refused->second + "; its chains are named from the ruleset alone"});
    // kfree_skb looks up the chain nft_do_chain is evaluating (a drop freed inside it, 6.11+).
    if (present && refused == refused_.end() && std::string(t.function) == "nft_do_chain")
      skel_->rodata->nft_active_kept = true;
    if (present && std::string(t.module).find("_tables") != std::string::npos)
      skel_->rodata->xt_table_first = !params.empty() && params[0] != "skb";
  }
}

Tracer::~Tracer() { close(); }

std::vector<PointStatus> Tracer::attach_tracepoints() {
  std::vector<PointStatus> out = skipped_;
  bpf_program *prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    std::string tp = point_of(prog);
    if (tp.empty() || !bpf_program__autoload(prog)) continue;
    PointStatus s{tp, false, ""};
    bpf_link *link = bpf_program__attach(prog);
    if (link) {
      links_.push_back(link);
      s.attached = true;
    } else {
      s.error = errno_text(errno);
    }
    out.push_back(s);
  }
  return out;
}

std::vector<NetfilterResult> Tracer::attach_netfilter(const std::string &netns_path,
                                                      const std::vector<NetfilterRequest> &requests,
                                                      std::string *error) {
  std::vector<NetfilterResult> results(requests.size());
  int rc = run_in_netns(
      netns_path,
      [&] {
        for (size_t i = 0; i < requests.size(); i++) {
          const NetfilterRequest &rq = requests[i];
          bpf_program *prog = nf_slot(skel_, rq.slot);
          if (!prog || !bpf_program__autoload(prog)) {
            results[i].error = EOPNOTSUPP;
            continue;
          }
          int prio = rq.priority;
          for (int attempt = 0; attempt < rq.max_tries; attempt++, prio += rq.step) {
            LIBBPF_OPTS(bpf_netfilter_opts, opts, .pf = (__u32)rq.pf, .hooknum = (__u32)rq.hook, .priority = prio);
            bpf_link *link = bpf_program__attach_netfilter(prog, &opts);
            if (link) {
              int id = next_link_id_++;
              netfilter_links_[id] = link;
              results[i] = {prio, 0, id};
              break;
            }
            results[i] = {prio, errno, 0};
            if (errno != EBUSY) break;  // EBUSY: that priority is taken, try the next
          }
        }
        return 0;
      },
      error);
  if (rc < 0)
    for (auto &r : results) r.error = -rc;
  return results;
}

bool Tracer::detach_link(int id) {
  auto it = netfilter_links_.find(id);
  if (it == netfilter_links_.end()) return false;
  bpf_link__destroy(it->second);
  netfilter_links_.erase(it);
  return true;
}

std::vector<VerdictStatus> Tracer::trace_verdicts(const std::vector<VerdictTarget> &targets) {
  std::vector<VerdictStatus> out;
  for (auto it = verdicts_.begin(); it != verdicts_.end();) {
    bool listed =
        std::any_of(targets.begin(), targets.end(), [&](const VerdictTarget &t) { return t.id == it->first; });
    if (listed) {
      ++it;
      continue;
    }
    // Our link holds the program: let go of one that left its device, so that it can be freed.
    bpf_link__destroy(it->second.link);
    device_verdicts_bpf__destroy(it->second.skel);
    it = verdicts_.erase(it);
  }
  std::string refusal;  // once the kernel refused one, the others are not tried
  for (const VerdictTarget &t : targets) {
    VerdictStatus s{t.id, true, "", false};
    if (!refusal.empty())
      s = {t.id, false, refusal, true};
    else if (!verdicts_.count(t.id))
      s.attached = trace_verdict(t, &s.error, &s.refused) == 0;
    if (s.refused) refusal = s.error;
    out.push_back(s);
  }
  return out;
}

int Tracer::trace_verdict(const VerdictTarget &target, std::string *why, bool *refused) {
  if (!skel_) return -EBADF;
  int fd = bpf_prog_get_fd_by_id(target.id);
  if (fd < 0) {
    int err = -errno;
    *why = "cannot open it: " + errno_text(err);
    return err;
  }
  auto [name, function] = program_names(fd);
  if (function.empty()) {
    ::close(fd);
    *why = "it was loaded without BTF, which a tracing program needs to attach to it";
    return -EINVAL;
  }
  // A load that a signal interrupted (EAGAIN) is tried again, on an object opened anew (libbpf loads one once).
  device_verdicts_bpf *skel = nullptr;
  bpf_program *prog = nullptr;
  libbpf_log.clear();
  int err = -EAGAIN;
  for (int attempt = 0; err == -EAGAIN && attempt < 5; attempt++) {
    device_verdicts_bpf__destroy(skel);
    skel = open_verdicts_skeleton();
    if (!skel) {
      err = -errno;
      break;
    }
    memcpy((void *)&skel->rodata->filter, filter_.get(), sizeof(*filter_));
    skel->rodata->target_id = target.id;
    strncpy((char *)skel->rodata->target_name, name.c_str(), sizeof(skel->rodata->target_name) - 1);
    skel->bss->expr.len = std::min<size_t>(expression_.size(), PT_EXPR_MAX_INSNS);
    memcpy(skel->bss->expr.insns, expression_.data(), skel->bss->expr.len * sizeof(pathtrace_expr_insn));
    prog = target.xdp ? skel->progs.xdp_verdict : skel->progs.tc_verdict;
    bpf_program__set_autoload(target.xdp ? skel->progs.tc_verdict : skel->progs.xdp_verdict, false);
    // Its records go where the main object's go.
    err = bpf_map__reuse_fd(skel->maps.events, bpf_map__fd(skel_->maps.events));
    if (!err) err = bpf_map__reuse_fd(skel->maps.lost, bpf_map__fd(skel_->maps.lost));
    if (!err) err = bpf_program__set_attach_target(prog, fd, function.c_str());
    if (!err) err = unsignalled([&] { return device_verdicts_bpf__load(skel); });
  }
  ::close(fd);  // the loaded program holds its target
  bpf_link *link = err ? nullptr : bpf_program__attach(prog);
  if (!err && !link) err = -errno;
  if (err) {
    std::string detail = load_failure(libbpf_log);
    *why = errno_text(err) + (detail.empty() ? "" : ": " + detail);
    // Refused as such (no trampolines, or tracing programs not allowed here): so would any other be.
    *refused = err == -EPERM || err == -EOPNOTSUPP || err == -524 /* ENOTSUPP */;
    device_verdicts_bpf__destroy(skel);
    return err;
  }
  verdicts_[target.id] = {skel, link};
  return 0;
}

int Tracer::on_bytes(void *ctx, void *data, size_t size) {
  auto *self = static_cast<Tracer *>(ctx);
  size_t padded = (size + 7) & ~size_t(7);
  // Unreachable while callers leave room for a full record (below); it would drop this one.
  if (self->bytes_len_ + padded > self->bytes_max_) return kBatchFull;
  memcpy(self->bytes_out_ + self->bytes_len_, data, size);
  self->bytes_len_ += padded;
  return self->bytes_len_ + sizeof(pathtrace_bytes) > self->bytes_max_ ? kBatchFull : 0;
}

size_t Tracer::consume_bytes(uint8_t *out, size_t max) {
  if (!bytes_ring_) return 0;
  bytes_out_ = out;
  bytes_len_ = 0;
  bytes_max_ = max;
  ring_buffer__consume(bytes_ring_);
  bytes_out_ = nullptr;
  return bytes_len_;
}

uint64_t Tracer::lost_events() const {
  if (!skel_) return 0;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return 0;
  std::vector<uint64_t> per_cpu(ncpu);
  uint32_t key = PT_LOST_EVENTS;
  if (bpf_map__lookup_elem(skel_->maps.lost, &key, sizeof(key), per_cpu.data(), per_cpu.size() * sizeof(uint64_t), 0))
    return 0;
  uint64_t sum = drain_ ? drain_->dropped() : 0;
  for (uint64_t n : per_cpu) sum += n;
  return sum;
}

void Tracer::close() {
  for (auto &[id, v] : verdicts_) {
    bpf_link__destroy(v.link);
    device_verdicts_bpf__destroy(v.skel);
  }
  verdicts_.clear();
  for (bpf_link *l : links_) bpf_link__destroy(l);
  links_.clear();
  for (auto &[id, l] : netfilter_links_) bpf_link__destroy(l);
  netfilter_links_.clear();
  drain_.reset();
  if (bytes_ring_) ring_buffer__free(bytes_ring_);
  bytes_ring_ = nullptr;
  if (skel_) pathtrace_bpf__destroy(skel_);
  skel_ = nullptr;
}

std::vector<int> test_expression(const std::vector<pathtrace_expr_insn> &program,
                                 const std::vector<std::vector<uint8_t>> &packets) {
  if (program.size() > PT_EXPR_MAX_INSNS) throw std::runtime_error("program too long");
  pathtrace_bpf *skel = open_skeleton();
  if (!skel) throw std::runtime_error(std::string("cannot open the BPF object: ") + strerror(errno));
  bpf_program *prog;
  bpf_object__for_each_program(prog, skel->obj) bpf_program__set_autoload(prog, prog == skel->progs.expr_test);
  skel->bss->expr.len = program.size();
  memcpy(skel->bss->expr.insns, program.data(), program.size() * sizeof(pathtrace_expr_insn));
  if (int err = pathtrace_bpf__load(skel)) {
    pathtrace_bpf__destroy(skel);
    throw std::runtime_error(std::string("cannot load the expression's self-test: ") + strerror(-err));
  }
  std::vector<int> out;
  int fd = bpf_program__fd(skel->progs.expr_test);
  for (const std::vector<uint8_t> &ip : packets) {
    // An Ethernet frame around the packet (what a tc program's test run takes), padded to the window.
    std::vector<uint8_t> frame(14 + std::max<size_t>(ip.size(), PT_EXPR_WINDOW), 0);
    frame[12] = (!ip.empty() && (ip[0] >> 4) == 6) ? 0x86 : 0x08;
    frame[13] = (!ip.empty() && (ip[0] >> 4) == 6) ? 0xdd : 0x00;
    memcpy(frame.data() + 14, ip.data(), std::min<size_t>(ip.size(), PT_EXPR_WINDOW));
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_size_in = (__u32)frame.size(), .repeat = 1);
    out.push_back(bpf_prog_test_run_opts(fd, &opts) ? -1 : (int)opts.retval);
  }
  pathtrace_bpf__destroy(skel);
  return out;
}

}  // namespace pathtrace
