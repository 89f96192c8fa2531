#include "drain.h"

#include <bpf/libbpf.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace pathtrace {

namespace {
// A negative return from the ring buffer callback stops consumption after the current sample
// (which libbpf counts as consumed): the queue is full.
constexpr int kQueueFull = -1000;
// Pauses between reads of the ring: short while records come (a busy port fills an 8 MiB ring in
// ~100 ms), longer once it has been empty for a while (an idle trace wakes 50 times a second).
constexpr int kBusyPauseMs = 1;
constexpr int kIdlePauseMs = 20;
constexpr int kIdleAfterEmptyReads = 20;
}  // namespace

Drain::Drain(int ring_fd, size_t max_records) : max_records_(max_records) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error(std::string("cannot make an eventfd: ") + strerror(errno));
  ring_ = ring_buffer__new(ring_fd, on_sample, this, nullptr);
  if (!ring_) {
    int err = errno;
    close(wake_fd_);
    throw std::runtime_error(std::string("cannot map the ring buffer: ") + strerror(err));
  }
  filling_.reserve(kChunkRecords);  // never grows: full, it is flushed
  thread_ = std::thread([this] { run(); });
}

Drain::~Drain() {
  stop_ = true;
  uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    // An eventfd's counter cannot overflow here: the thread still wakes at its next pause.
  }
  if (thread_.joinable()) thread_.join();
  close(wake_fd_);
  ring_buffer__free(ring_);
  for (Chunk &c : queue_) unmap_chunk(c);
}

Drain::Chunk Drain::map_chunk() {
  void *p = mmap(nullptr, kChunkRecords * sizeof(pathtrace_record), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED) return {};
  return {static_cast<pathtrace_record *>(p), 0};
}

void Drain::unmap_chunk(Chunk &c) {
  if (c.records) munmap(c.records, kChunkRecords * sizeof(pathtrace_record));
  c = {};
}

void Drain::run() {
  // Signals are for the event loop's thread (Ctrl-C must stop the trace, not this one).
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  int empty_reads = 0;
  while (!stop_) {
    size_t n;
    {
      std::lock_guard<std::mutex> lock(drain_mu_);
      n = drain_ring();
    }
    empty_reads = n ? 0 : empty_reads + 1;
    pollfd wake = {wake_fd_, POLLIN, 0};
    poll(&wake, 1, empty_reads >= kIdleAfterEmptyReads ? kIdlePauseMs : kBusyPauseMs);
  }
}

int Drain::on_sample(void *ctx, void *data, size_t size) {
  auto *self = static_cast<Drain *>(ctx);
  if (size != sizeof(pathtrace_record)) return 0;
  self->filling_.emplace_back();
  memcpy(&self->filling_.back(), data, size);
  if (self->filling_.size() < kChunkRecords) return 0;
  self->flush_filling();
  std::lock_guard<std::mutex> lock(self->queue_mu_);
  return self->queued_ >= self->max_records_ ? kQueueFull : 0;
}

void Drain::flush_filling() {
  std::lock_guard<std::mutex> lock(queue_mu_);
  size_t from = 0;
  while (from < filling_.size()) {
    if (queue_.empty() || queue_.back().size == kChunkRecords) {
      Chunk c = map_chunk();
      if (!c.records) {  // no memory: these records are lost, and counted so
        dropped_ += filling_.size() - from;
        break;
      }
      queue_.push_back(c);
    }
    Chunk &back = queue_.back();
    size_t k = std::min(kChunkRecords - back.size, filling_.size() - from);
    memcpy(back.records + back.size, filling_.data() + from, k * sizeof(pathtrace_record));
    back.size += k;
    queued_ += k;
    from += k;
  }
  filling_.clear();
}

size_t Drain::drain_ring() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (queued_ >= max_records_) return 0;  // JavaScript is far behind: the ring holds the rest
  }
  int n = ring_buffer__consume(ring_);
  if (!filling_.empty()) flush_filling();
  return n > 0 ? size_t(n) : n < 0 ? 1 : 0;  // negative: stopped with the queue full, after a record
}

size_t Drain::take(pathtrace_record *out, size_t max) {
  {
    std::lock_guard<std::mutex> lock(drain_mu_);
    drain_ring();
  }
  std::lock_guard<std::mutex> lock(queue_mu_);
  size_t n = 0;
  while (n < max && !queue_.empty()) {
    Chunk &front = queue_.front();
    size_t k = std::min(max - n, front.size - head_);
    memcpy(out + n, front.records + head_, k * sizeof(pathtrace_record));
    n += k;
    head_ += k;
    if (head_ < front.size) break;
    // Taken whole: unmapped (the last one too: the next drain maps a fresh one, touched as it fills).
    unmap_chunk(front);
    queue_.pop_front();
    head_ = 0;
  }
  queued_ -= n;
  return n;
}

}  // namespace pathtrace
