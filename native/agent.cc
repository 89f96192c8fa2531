#include "agent.h"

#include <algorithm>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <unistd.h>

#include "agent.skel.h"
#include "agent_compat.skel.h"
#include "in_netns.h"
#include "kernel.h"
#include "skeleton.h"

namespace pathtrace {

namespace {
constexpr int kFirstPriority = INT_MIN + 1;
constexpr int kTries = 16;  // EBUSY: that priority is taken (a pathtrace trace is there), try the next
}  // namespace

Agent::Agent(const std::vector<uint16_t> &ports, const std::vector<pathtrace_expr_insn> &expression, bool label_ports) {
  skel_ = open_for_kernel(agent_bpf__open, agent_bpf__create_skeleton, agent_compat_bpf__elf_bytes, agent_bpf__destroy);
  if (!skel_) throw std::runtime_error("cannot open the agent's BPF object: " + errno_text(errno));
  skel_->rodata->any_port = ports.empty();
  for (uint16_t p : ports) skel_->rodata->ports[p >> 3] |= 1 << (p & 7);
  skel_->rodata->label_ports = label_ports && !ports.empty();
  skel_->bss->expr.len = std::min<size_t>(expression.size(), PT_EXPR_MAX_INSNS);
  memcpy(skel_->bss->expr.insns, expression.data(), skel_->bss->expr.len * sizeof(pathtrace_expr_insn));
  // One kfree_skb program, by the tracepoint's arity: with a reason (5.17+) or without.
  bool reasons = tracepoint_arity("kfree_skb") >= 3;
  bpf_program__set_autoload(skel_->progs.agent_kfree_skb, reasons);
  bpf_program__set_autoload(skel_->progs.agent_kfree_skb_noreason, !reasons);
  netfilter_links_ = probe_kernel().netfilter_links;
  bpf_program__set_autoload(skel_->progs.agent_nf_entry, netfilter_links_);
  int err = agent_bpf__load(skel_);
  if (err) {
    close();
    throw std::runtime_error("the kernel refused the agent's programs: " + errno_text(err));
  }
  samples_ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.samples), on_sample, this, nullptr);
  if (!samples_ring_) {
    err = errno;
    close();
    throw std::runtime_error("cannot map the agent's sample ring: " + errno_text(err));
  }
}

int Agent::on_sample(void *ctx, void *data, size_t size) {
  auto *self = static_cast<Agent *>(ctx);
  if (size >= sizeof(pathtrace_drop_sample))
    self->samples_.push_back(*static_cast<const pathtrace_drop_sample *>(data));
  return 0;
}

std::vector<pathtrace_drop_sample> Agent::samples() {
  samples_.clear();
  if (samples_ring_) ring_buffer__consume(samples_ring_);
  return std::move(samples_);
}

Agent::~Agent() { close(); }

void Agent::set_nf_freers(const std::vector<std::pair<uint64_t, uint64_t>> &nf_freers) {
  if (!skel_) return;
  for (size_t i = 0; i < PT_AGENT_NF_FREERS; i++) {
    // The end first, so that a range being replaced is never wider than either (a free misread as the hook's).
    skel_->bss->nf_freer_end[i] = 0;
    skel_->bss->nf_freer_start[i] = i < nf_freers.size() ? nf_freers[i].first : 0;
    skel_->bss->nf_freer_end[i] = i < nf_freers.size() ? nf_freers[i].second : 0;
  }
}

std::string Agent::attach_drops() {
  bpf_program *prog = bpf_program__autoload(skel_->progs.agent_kfree_skb) ? skel_->progs.agent_kfree_skb
                                                                          : skel_->progs.agent_kfree_skb_noreason;
  if (drops_link_) return "";
  drops_link_ = bpf_program__attach(prog);
  if (drops_link_) return "";
  return "cannot attach to kfree_skb: " + errno_text(errno);
}

std::vector<int> Agent::attach_hooks(const std::string &netns_path, const std::vector<std::pair<int, int>> &hooks,
                                     std::string *error) {
  std::vector<int> ids(hooks.size(), 0);
  if (!netfilter_links_) return ids;
  run_in_netns(
      netns_path,
      [&] {
        for (size_t i = 0; i < hooks.size(); i++)
          for (int prio = kFirstPriority; prio < kFirstPriority + kTries; prio++) {
            LIBBPF_OPTS(bpf_netfilter_opts, opts, .pf = (__u32)hooks[i].first, .hooknum = (__u32)hooks[i].second,
                        .priority = prio);
            bpf_link *link = bpf_program__attach_netfilter(skel_->progs.agent_nf_entry, &opts);
            if (link) {
              hook_links_[next_link_] = link;
              ids[i] = next_link_++;
              break;
            }
            if (errno != EBUSY) break;  // this hook is not counted by hook: the others still are
          }
        return 0;
      },
      error);
  return ids;
}

void Agent::detach(const std::vector<int> &links) {
  for (int id : links) {
    auto it = hook_links_.find(id);
    if (it == hook_links_.end()) continue;
    bpf_link__destroy(it->second);
    hook_links_.erase(it);
  }
}

std::vector<DropCount> Agent::counts() const {
  std::vector<DropCount> out;
  if (!skel_) return out;
  int fd = bpf_map__fd(skel_->maps.drops);
  int cpus = libbpf_num_possible_cpus();
  std::vector<pathtrace_drop_count> per_cpu(cpus > 0 ? cpus : 1);
  pathtrace_drop_key key, next;
  pathtrace_drop_key *prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    if (bpf_map_lookup_elem(fd, &key, per_cpu.data()) != 0) continue;  // deleted between
    DropCount d{key, {0, 0}};
    for (const auto &c : per_cpu) {
      d.count.packets += c.packets;
      d.count.bytes += c.bytes;
    }
    out.push_back(d);
  }
  return out;
}

size_t Agent::forget_netns(uint32_t netns) {
  if (!skel_) return 0;
  int fd = bpf_map__fd(skel_->maps.drops);
  std::vector<pathtrace_drop_key> gone;
  pathtrace_drop_key key, next;
  pathtrace_drop_key *prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    if (key.netns == netns) gone.push_back(key);
  }
  // Deleted after the walk: a deletion during it would restart the walk from the first key.
  size_t n = 0;
  for (const auto &k : gone) n += bpf_map_delete_elem(fd, &k) == 0;
  return n;
}

pathtrace_drop_count Agent::unkeyed() const {
  pathtrace_drop_count sum{0, 0};
  if (!skel_) return sum;
  int cpus = libbpf_num_possible_cpus();
  std::vector<pathtrace_drop_count> per_cpu(cpus > 0 ? cpus : 1);
  __u32 zero = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.unkeyed), &zero, per_cpu.data()) == 0)
    for (const auto &c : per_cpu) {
      sum.packets += c.packets;
      sum.bytes += c.bytes;
    }
  return sum;
}

uint64_t Agent::lost(pathtrace_agent_lost kind) const {
  uint64_t sum = 0;
  if (!skel_) return sum;
  int cpus = libbpf_num_possible_cpus();
  std::vector<uint64_t> per_cpu(cpus > 0 ? cpus : 1);
  __u32 k = kind;
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.lost), &k, per_cpu.data()) == 0)
    for (uint64_t n : per_cpu) sum += n;
  return sum;
}

void Agent::close() {
  if (samples_ring_) ring_buffer__free(samples_ring_);
  samples_ring_ = nullptr;
  for (auto &[id, link] : hook_links_) bpf_link__destroy(link);
  hook_links_.clear();
  if (drops_link_) bpf_link__destroy(drops_link_);
  drops_link_ = nullptr;
  if (skel_) agent_bpf__destroy(skel_);
  skel_ = nullptr;
}

}  // namespace pathtrace
