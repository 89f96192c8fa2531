#include "tracer.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <unistd.h>

#include "in_netns.h"
#include "kernel.h"
#include "pathtrace.skel.h"

namespace pathtrace {

namespace {
// A negative return from the ring buffer callback stops consumption after
// the current sample (which libbpf counts as consumed): "batch full".
constexpr int kBatchFull = -1000;

std::string errno_text(int err) { return std::string(strerror(err < 0 ? -err : err)); }

// The tracepoint a tp_btf program attaches to, from its section name.
std::string tracepoint_of(const bpf_program *prog) {
  std::string sec = bpf_program__section_name(prog);
  const std::string prefix = "tp_btf/";
  return sec.rfind(prefix, 0) == 0 ? sec.substr(prefix.size()) : "";
}

bool is_netfilter(const bpf_program *prog) { return bpf_program__type(prog) == kProgTypeNetfilter; }

bpf_program *nf_slot(pathtrace_bpf *skel, int slot) {
  bpf_program *progs[PT_NF_SLOTS] = {
      skel->progs.nf_probe0, skel->progs.nf_probe1, skel->progs.nf_probe2, skel->progs.nf_probe3,
      skel->progs.nf_probe4, skel->progs.nf_probe5, skel->progs.nf_probe6, skel->progs.nf_probe7};
  return slot >= 0 && slot < PT_NF_SLOTS ? progs[slot] : nullptr;
}
}  // namespace

Tracer::Tracer(const pathtrace_filter &filter, uint32_t ring_bytes, bool netfilter, const std::vector<std::string> &skip) {
  // A signal during verification (a profiler's SIGPROF, say) makes the load fail with EAGAIN: try again.
  for (int attempt = 0;; attempt++) {
    int err = open_and_load(filter, ring_bytes, netfilter, skip);
    if (!err) break;
    close();
    skipped_.clear();
    if (err != -EAGAIN || attempt == 4) throw std::runtime_error("cannot load the BPF programs: " + errno_text(err));
  }
  ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.events), on_sample, this, nullptr);
  bytes_ring_ = ring_buffer__new(bpf_map__fd(skel_->maps.packet_bytes), on_bytes, this, nullptr);
  if (!ring_ || !bytes_ring_) {
    int err = errno;
    close();
    throw std::runtime_error("cannot map the ring buffer: " + errno_text(err));
  }
}

int Tracer::open_and_load(const pathtrace_filter &filter, uint32_t ring_bytes, bool netfilter, const std::vector<std::string> &skip) {
  skel_ = pathtrace_bpf__open();
  if (!skel_) return -errno;
  memcpy((void *)&skel_->rodata->filter, &filter, sizeof(filter));
  bpf_map__set_max_entries(skel_->maps.events, ring_bytes);
  // Packet bytes only travel with --write; otherwise the ring stays minimal.
  bpf_map__set_max_entries(skel_->maps.packet_bytes, filter.snaplen ? ring_bytes : (uint32_t)sysconf(_SC_PAGESIZE));

  // Leave out what this kernel cannot load, so that the rest still works.
  bpf_program *prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (is_netfilter(prog)) {
      if (!netfilter) bpf_program__set_autoload(prog, false);
      continue;
    }
    std::string tp = tracepoint_of(prog);
    if (std::find(skip.begin(), skip.end(), tp) != skip.end()) {
      bpf_program__set_autoload(prog, false);
      continue;
    }
    if (!tp.empty() && !has_tracepoint(tp)) {
      bpf_program__set_autoload(prog, false);
      skipped_.push_back({tp, false, "this kernel has no tracepoint " + tp});
    }
  }

  return pathtrace_bpf__load(skel_);
}

Tracer::~Tracer() { close(); }

std::vector<PointStatus> Tracer::attach_tracepoints() {
  std::vector<PointStatus> out = skipped_;
  bpf_program *prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    std::string tp = tracepoint_of(prog);
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
  int rc = run_in_netns(netns_path, [&] {
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
  }, error);
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

int Tracer::on_sample(void *ctx, void *data, size_t size) {
  auto *self = static_cast<Tracer *>(ctx);
  if (size == sizeof(pathtrace_record)) memcpy(&self->batch_[self->batch_len_++], data, size);
  return self->batch_len_ >= self->batch_max_ ? kBatchFull : 0;
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

size_t Tracer::consume(pathtrace_record *out, size_t max) {
  if (!ring_ || max == 0) return 0;
  batch_ = out;
  batch_len_ = 0;
  batch_max_ = max;
  ring_buffer__consume(ring_);
  batch_ = nullptr;
  return batch_len_;
}

uint64_t Tracer::lost_events() const {
  if (!skel_) return 0;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return 0;
  std::vector<uint64_t> per_cpu(ncpu);
  uint32_t key = PT_LOST_EVENTS;
  if (bpf_map__lookup_elem(skel_->maps.lost, &key, sizeof(key), per_cpu.data(), per_cpu.size() * sizeof(uint64_t), 0))
    return 0;
  uint64_t sum = 0;
  for (uint64_t n : per_cpu) sum += n;
  return sum;
}

void Tracer::close() {
  for (bpf_link *l : links_) bpf_link__destroy(l);
  links_.clear();
  for (auto &[id, l] : netfilter_links_) bpf_link__destroy(l);
  netfilter_links_.clear();
  if (ring_) ring_buffer__free(ring_);
  ring_ = nullptr;
  if (bytes_ring_) ring_buffer__free(bytes_ring_);
  bytes_ring_ = nullptr;
  if (skel_) pathtrace_bpf__destroy(skel_);
  skel_ = nullptr;
}

}  // namespace pathtrace
