// Empties the event ring on a thread of its own into a queue that JavaScript
// takes batches from. The kernel's ring then never waits on the event loop:
// not on the JIT warming up at the start, a garbage collection or a ruleset
// read. The queue grows only while JavaScript is behind, up to a bound; past
// it the thread leaves records in the ring, and the ring's overflow is counted
// as lost events, as before. Its chunks are mapped and unmapped as they fill
// and empty: memory a burst took goes back to the system when it is taken.
#pragma once
#include <atomic>
#include <cstddef>
#include <deque>
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
  // Records read from the ring that could not be queued (no memory for a chunk): lost like the ring's overflow.
  uint64_t dropped() const { return dropped_; }

 private:
  static constexpr size_t kChunkRecords = 4096;  // 512 KiB

  // kChunkRecords records in pages of their own.
  struct Chunk {
    pathtrace_record *records = nullptr;
    size_t size = 0;  // records in it
  };
  static Chunk map_chunk();
  static void unmap_chunk(Chunk &c);

  void run();
  // Moves records from the ring into the queue; returns how many. Caller holds drain_mu_.
  size_t drain_ring();
  // Appends what filling_ holds to the queue. Caller holds drain_mu_.
  void flush_filling();
  static int on_sample(void *ctx, void *data, size_t size);

  ring_buffer *ring_ = nullptr;
  const size_t max_records_;

  std::mutex drain_mu_;                    // one reader of the ring at a time
  std::vector<pathtrace_record> filling_;  // records read, not yet queued (drain_mu_)

  std::mutex queue_mu_;
  std::deque<Chunk> queue_;  // oldest first; only the last one may have room
  size_t queued_ = 0;        // records in queue_ not yet taken
  size_t head_ = 0;          // records of queue_.front() already taken
  std::atomic<uint64_t> dropped_{0};

  std::atomic<bool> stop_{false};
  // Wakes the thread from its pause to stop. An eventfd and poll(), not a condition variable: a timed wait on a
  // steady clock needs glibc 2.30 (pthread_cond_clockwait), and the addon is built for older userlands.
  int wake_fd_ = -1;
  std::thread thread_;
};

}  // namespace pathtrace
