// Empties the event ring on a thread of its own into a queue that JavaScript
// takes batches from. The kernel's ring then never waits on the event loop:
// not on the JIT warming up at the start, a garbage collection or a ruleset
// read. The queue grows only while JavaScript is behind, up to a bound; past
// it the thread leaves records in the ring, and the ring's overflow is counted
// as lost events, as before.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "record.h"

struct ring_buffer;

namespace pathtrace {

class Drain {
 public:
  // Maps the ring buffer map ring_fd and starts draining it; queues at most max_records.
  // Throws std::runtime_error when the ring cannot be mapped.
  Drain(int ring_fd, size_t max_records);
  // Stops the thread and unmaps the ring.
  ~Drain();
  Drain(const Drain &) = delete;
  Drain &operator=(const Drain &) = delete;

  // Moves up to max queued records into out, oldest first; returns how many.
  // Empties the ring first, so that a caller sees every record the kernel wrote before the call.
  size_t take(pathtrace_record *out, size_t max);

 private:
  using Chunk = std::vector<pathtrace_record>;
  static constexpr size_t kChunkRecords = 4096;

  void run();
  // Moves records from the ring into the queue; returns how many. Caller holds drain_mu_.
  size_t drain_ring();
  static int on_sample(void *ctx, void *data, size_t size);

  ring_buffer *ring_ = nullptr;
  const size_t max_records_;

  std::mutex drain_mu_;  // one reader of the ring at a time
  Chunk filling_;        // records read, not yet queued (drain_mu_)

  std::mutex queue_mu_;
  std::deque<Chunk> queue_;  // full chunks and the last partial one, oldest first
  size_t queued_ = 0;        // records in queue_
  size_t head_ = 0;          // records of queue_.front() already taken

  std::atomic<bool> stop_{false};
  std::mutex sleep_mu_;
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace pathtrace
