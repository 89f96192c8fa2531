#include "expression.h"

#include <dlfcn.h>
#include <pcap/pcap.h>

#include <cstring>
#include <stdexcept>

namespace pathtrace {
namespace {

// The few libpcap functions used, looked up once in the library dlopen found.
struct Libpcap {
  decltype(&pcap_open_dead) open_dead = nullptr;
  decltype(&pcap_compile) compile = nullptr;
  decltype(&pcap_freecode) freecode = nullptr;
  decltype(&pcap_geterr) geterr = nullptr;
  decltype(&pcap_close) close = nullptr;
};

template <typename F>
void find(void *lib, const char *name, F *out) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  if (!*out) throw std::runtime_error(std::string("libpcap lacks ") + name);
}

const Libpcap &libpcap(const std::vector<std::string> &libraries) {
  static Libpcap pcap;
  if (pcap.compile) return pcap;
  void *lib = nullptr;
  std::string tried;
  for (const std::string &name : libraries) {
    if ((lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL))) break;
    tried += (tried.empty() ? "" : ", ") + name;
  }
  if (!lib)
    throw std::runtime_error("filter expressions need libpcap, the library tcpdump uses (none of " + tried + " loads)");
  find(lib, "pcap_open_dead", &pcap.open_dead);
  find(lib, "pcap_freecode", &pcap.freecode);
  find(lib, "pcap_geterr", &pcap.geterr);
  find(lib, "pcap_close", &pcap.close);
  find(lib, "pcap_compile", &pcap.compile);
  return pcap;
}

}  // namespace

std::vector<pathtrace_expr_insn> compile_expression(const std::string &text,
                                                    const std::vector<std::string> &libraries) {
  const Libpcap &pcap = libpcap(libraries);
  // Raw IP: the program reads the packet from its IP header, as the BPF side holds it.
  pcap_t *p = pcap.open_dead(DLT_RAW, 262144);
  if (!p) throw std::runtime_error("libpcap cannot open a raw IP handle");
  struct bpf_program prog;
  if (pcap.compile(p, &prog, text.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    std::string why = pcap.geterr(p);
    pcap.close(p);
    throw std::runtime_error(why);
  }
  std::vector<pathtrace_expr_insn> out(prog.bf_len);
  static_assert(sizeof(pathtrace_expr_insn) == sizeof(struct bpf_insn), "classic BPF instruction layout");
  memcpy(out.data(), prog.bf_insns, prog.bf_len * sizeof(struct bpf_insn));
  pcap.freecode(&prog);
  pcap.close(p);
  return out;
}

}  // namespace pathtrace
