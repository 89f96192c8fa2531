// The agent's kernel objects: bpf/agent.bpf.c loaded, its kfree_skb program attached, its netfilter entry
// programs attached in each namespace watched, and the drop counts read back summed over CPUs.
// Knows nothing of JavaScript; native/addon.cc is the binding.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "drop_counts.h"

struct agent_bpf;
struct bpf_link;
struct ring_buffer;

namespace pathtrace {

struct DropCount {
  pathtrace_drop_key key;
  pathtrace_drop_count count;
};

class Agent {
 public:
  // Loads the programs; ports: count only drops of TCP and UDP to or from these (none: all drops); expression:
  // only drops it takes (none: all); label_ports: each drop counted by the port of the list it has. Throws
  // std::runtime_error saying what the kernel refused.
  Agent(const std::vector<uint16_t> &ports, const std::vector<pathtrace_expr_insn> &expression, bool label_ports);
  ~Agent();
  Agent(const Agent &) = delete;
  Agent &operator=(const Agent &) = delete;

  // Whether this kernel has netfilter BPF programs (6.4+): without them drops are counted but not by hook.
  bool netfilter_links() const { return netfilter_links_; }
  // [start, end) of netfilter's freeing functions (at most PT_AGENT_NF_FREERS), whose frees are a hook's drops.
  void set_nf_freers(const std::vector<std::pair<uint64_t, uint64_t>> &nf_freers);
  // Attaches the kfree_skb program; "" or why not.
  std::string attach_drops();
  // Attaches the hook entry program in the namespace at netns_path at each of these hooks ({pf, hooknum}): the id
  // of each link (for detach), 0 where it could not be; *error when the namespace could not be entered.
  std::vector<int> attach_hooks(const std::string &netns_path, const std::vector<std::pair<int, int>> &hooks,
                                std::string *error);
  void detach(const std::vector<int> &links);
  std::vector<DropCount> counts() const;
  // Deletes the counts of a namespace that went (its inode may come back for another one); how many.
  size_t forget_netns(uint32_t netns);
  pathtrace_drop_count unkeyed() const;
  // First drops of keys not told (enum pathtrace_agent_lost: the sample ring was full).
  uint64_t lost(pathtrace_agent_lost kind) const;
  // The first drops of new keys since the last call, oldest first.
  std::vector<pathtrace_drop_sample> samples();
  void close();

 private:
  agent_bpf *skel_ = nullptr;
  bpf_link *drops_link_ = nullptr;
  ring_buffer *samples_ring_ = nullptr;
  std::vector<pathtrace_drop_sample> samples_;  // filled by the ring's callback during samples()
  static int on_sample(void *ctx, void *data, size_t size);
  std::map<int, bpf_link *> hook_links_;
  int next_link_ = 1;
  bool netfilter_links_ = false;
};

}  // namespace pathtrace
