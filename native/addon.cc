// The JavaScript binding: converts arguments and results, nothing more.
// Decoding, correlation and presentation live in src/ (TypeScript).
#include <bpf/libbpf.h>
#include <napi.h>

#include <cstddef>
#include <cstring>
#include <ctime>
#include <memory>
#include <unistd.h>

#include "agent.h"
#include "device_programs.h"
#include "expression.h"
#include "kernel.h"
#include "record.h"
#include "tracer.h"

namespace {
using namespace pathtrace;

Napi::Error error_with_errno(Napi::Env env, const std::string &msg, int err) {
  Napi::Error e = Napi::Error::New(env, msg);
  if (err) e.Set("errno", Napi::Number::New(env, err));
  return e;
}

// A compiled expression as JavaScript holds it: 8 bytes per classic BPF instruction; none when absent.
std::vector<pathtrace_expr_insn> program_of(Napi::Value v) {
  std::vector<pathtrace_expr_insn> out;
  if (!v.IsTypedArray()) return out;
  Napi::Uint8Array a = v.As<Napi::Uint8Array>();
  out.resize(std::min<size_t>(a.ByteLength() / sizeof(pathtrace_expr_insn), PT_EXPR_MAX_INSNS));
  memcpy(out.data(), a.Data(), out.size() * sizeof(pathtrace_expr_insn));
  return out;
}

// new Tracer({ netns, protos, ports: number[] | null, hosts: [{family, addr: Uint8Array}], expression,
//              ringBytes, netfilter: 'links' | 'trampolines' | 'kprobes' | 'none', snaplen, skip })
class TracerWrap : public Napi::ObjectWrap<TracerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Tracer",
                       {
                           InstanceMethod("attachTracepoints", &TracerWrap::AttachTracepoints),
                           InstanceMethod("attachNetfilter", &TracerWrap::AttachNetfilter),
                           InstanceMethod("detachLink", &TracerWrap::DetachLink),
                           InstanceMethod("traceVerdicts", &TracerWrap::TraceVerdicts),
                           InstanceMethod("consume", &TracerWrap::Consume),
                           InstanceMethod("consumeBytes", &TracerWrap::ConsumeBytes),
                           InstanceMethod("lostEvents", &TracerWrap::LostEvents),
                           InstanceMethod("dropReasons", &TracerWrap::DropReasons),
                           InstanceMethod("netfilterMode", &TracerWrap::NetfilterModeLoaded),
                           InstanceMethod("close", &TracerWrap::Close),
                       });
  }

  explicit TracerWrap(const Napi::CallbackInfo &info) : Napi::ObjectWrap<TracerWrap>(info) {
    Napi::Object o = info[0].As<Napi::Object>();
    auto filter = std::make_unique<pathtrace_filter>();  // 8 KiB: not on the stack
    filter->netns = o.Get("netns").As<Napi::Number>().Uint32Value();
    filter->protos = o.Get("protos").As<Napi::Number>().Uint32Value();
    Napi::Value ports = o.Get("ports");
    filter->any_port = ports.IsArray() ? 0 : 1;
    if (ports.IsArray()) {
      Napi::Array a = ports.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) {
        uint32_t p = a.Get(i).As<Napi::Number>().Uint32Value() & 0xffff;
        filter->ports[p >> 3] |= 1 << (p & 7);
      }
    }
    Napi::Array hosts = o.Get("hosts").As<Napi::Array>();
    if (hosts.Length() > PT_MAX_HOSTS) throw Napi::Error::New(info.Env(), "too many hosts");
    filter->nhosts = hosts.Length();
    for (uint32_t i = 0; i < hosts.Length(); i++) {
      Napi::Object h = hosts.Get(i).As<Napi::Object>();
      filter->hosts[i].family = h.Get("family").As<Napi::Number>().Uint32Value();
      Napi::Uint8Array addr = h.Get("addr").As<Napi::Uint8Array>();
      memcpy(filter->hosts[i].addr, addr.Data(), std::min<size_t>(addr.ByteLength(), 16));
    }
    Napi::Value snaplen = o.Get("snaplen");
    filter->snaplen =
        snaplen.IsNumber() ? std::min<uint32_t>(snaplen.As<Napi::Number>().Uint32Value(), PT_MAX_SNAPLEN) : 0;
    std::vector<pathtrace_expr_insn> expression = program_of(o.Get("expression"));
    filter->expression = !expression.empty();
    uint32_t ring_bytes = o.Get("ringBytes").As<Napi::Number>().Uint32Value();
    std::string nf = o.Get("netfilter").IsString() ? o.Get("netfilter").As<Napi::String>().Utf8Value() : "none";
    NetfilterMode netfilter = nf == "links"         ? NetfilterMode::Links
                              : nf == "trampolines" ? NetfilterMode::Trampolines
                              : nf == "kprobes"     ? NetfilterMode::Kprobes
                                                    : NetfilterMode::None;
    std::vector<std::string> skip;
    Napi::Value skipped = o.Get("skip");
    if (skipped.IsArray()) {
      Napi::Array a = skipped.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) skip.push_back(a.Get(i).As<Napi::String>());
    }
    try {
      tracer_ = std::make_unique<Tracer>(*filter, expression, ring_bytes, netfilter, skip);
    } catch (const std::exception &e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }

 private:
  Tracer &tracer(Napi::Env env) {
    if (!tracer_) throw Napi::Error::New(env, "tracer is closed");
    return *tracer_;
  }

  Napi::Value AttachTracepoints(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    auto statuses = tracer(env).attach_tracepoints();
    Napi::Array out = Napi::Array::New(env, statuses.size());
    for (size_t i = 0; i < statuses.size(); i++) {
      Napi::Object s = Napi::Object::New(env);
      s.Set("point", statuses[i].point);
      s.Set("attached", statuses[i].attached);
      if (!statuses[i].attached) s.Set("error", statuses[i].error);
      out.Set(i, s);
    }
    return out;
  }

  // traceVerdicts([{id, hook: 'xdp' | 'tc'}]) -> [{id, attached, error?, refused?}]
  Napi::Value TraceVerdicts(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Napi::Array list = info[0].As<Napi::Array>();
    std::vector<VerdictTarget> targets;
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Object t = list.Get(i).As<Napi::Object>();
      targets.push_back(
          {t.Get("id").As<Napi::Number>().Uint32Value(), t.Get("hook").As<Napi::String>().Utf8Value() == "xdp"});
    }
    auto statuses = tracer(env).trace_verdicts(targets);
    Napi::Array out = Napi::Array::New(env, statuses.size());
    for (size_t i = 0; i < statuses.size(); i++) {
      Napi::Object s = Napi::Object::New(env);
      s.Set("id", statuses[i].id);
      s.Set("attached", statuses[i].attached);
      if (!statuses[i].attached) {
        s.Set("error", statuses[i].error);
        s.Set("refused", statuses[i].refused);
      }
      out.Set(i, s);
    }
    return out;
  }

  // attachNetfilter(netnsPath, [{pf, hook, slot, priority, step, maxTries}]) -> [{priority, errno, link}]
  Napi::Value AttachNetfilter(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::string path = info[0].As<Napi::String>();
    Napi::Array reqs = info[1].As<Napi::Array>();
    std::vector<NetfilterRequest> requests;
    for (uint32_t i = 0; i < reqs.Length(); i++) {
      Napi::Object r = reqs.Get(i).As<Napi::Object>();
      requests.push_back(
          {r.Get("pf").As<Napi::Number>().Int32Value(), r.Get("hook").As<Napi::Number>().Int32Value(),
           r.Get("slot").As<Napi::Number>().Int32Value(), r.Get("priority").As<Napi::Number>().Int32Value(),
           r.Get("step").As<Napi::Number>().Int32Value(), r.Get("maxTries").As<Napi::Number>().Int32Value()});
    }
    std::string error;
    auto results = tracer(env).attach_netfilter(path, requests, &error);
    if (!error.empty()) throw error_with_errno(env, error, results.empty() ? 0 : results[0].error);
    Napi::Array out = Napi::Array::New(env, results.size());
    for (size_t i = 0; i < results.size(); i++) {
      Napi::Object r = Napi::Object::New(env);
      r.Set("priority", results[i].priority);
      r.Set("errno", results[i].error);
      r.Set("link", results[i].link);
      out.Set(i, r);
    }
    return out;
  }

  Napi::Value DetachLink(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    return Napi::Boolean::New(env, tracer(env).detach_link(info[0].As<Napi::Number>().Int32Value()));
  }

  // consume(Uint8Array) -> number of records copied into it
  Napi::Value Consume(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Napi::Uint8Array buf = info[0].As<Napi::Uint8Array>();
    size_t max = buf.ByteLength() / sizeof(pathtrace_record);
    size_t n = tracer_ ? tracer_->consume(reinterpret_cast<pathtrace_record *>(buf.Data()), max) : 0;
    return Napi::Number::New(env, n);
  }

  // consumeBytes(Uint8Array) -> bytes of packet-byte records copied into it
  Napi::Value ConsumeBytes(const Napi::CallbackInfo &info) {
    Napi::Uint8Array buf = info[0].As<Napi::Uint8Array>();
    size_t n = tracer_ ? tracer_->consume_bytes(buf.Data(), buf.ByteLength()) : 0;
    return Napi::Number::New(info.Env(), n);
  }

  Napi::Value LostEvents(const Napi::CallbackInfo &info) {
    return Napi::Number::New(info.Env(), tracer_ ? (double)tracer_->lost_events() : 0);
  }

  Napi::Value DropReasons(const Napi::CallbackInfo &info) {
    return Napi::Boolean::New(info.Env(), tracer(info.Env()).drop_reasons());
  }

  Napi::Value NetfilterModeLoaded(const Napi::CallbackInfo &info) {
    NetfilterMode m = tracer(info.Env()).netfilter_mode();
    return Napi::String::New(info.Env(), m == NetfilterMode::Links         ? "links"
                                         : m == NetfilterMode::Trampolines ? "trampolines"
                                         : m == NetfilterMode::Kprobes     ? "kprobes"
                                                                           : "none");
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    tracer_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<Tracer> tracer_;
};

// new Agent(ports: number[] | null, expression?: Uint8Array): the agent's counting programs (native/agent.h).
class AgentWrap : public Napi::ObjectWrap<AgentWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Agent",
                       {
                           InstanceMethod("setNfFreers", &AgentWrap::SetNfFreers),
                           InstanceMethod("attachDrops", &AgentWrap::AttachDrops),
                           InstanceMethod("attachHooks", &AgentWrap::AttachHooks),
                           InstanceMethod("detach", &AgentWrap::Detach),
                           InstanceMethod("counts", &AgentWrap::Counts),
                           InstanceMethod("netfilterLinks", &AgentWrap::NetfilterLinks),
                           InstanceMethod("samples", &AgentWrap::Samples),
                           InstanceMethod("forgetNetns", &AgentWrap::ForgetNetns),
                           InstanceMethod("close", &AgentWrap::Close),
                       });
  }

  explicit AgentWrap(const Napi::CallbackInfo &info) : Napi::ObjectWrap<AgentWrap>(info) {
    std::vector<uint16_t> ports;
    if (info[0].IsArray()) {
      Napi::Array a = info[0].As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) ports.push_back(a.Get(i).As<Napi::Number>().Uint32Value() & 0xffff);
    }
    try {
      agent_ = std::make_unique<Agent>(ports, program_of(info[1]), info[2].ToBoolean());
    } catch (const std::exception &e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }

 private:
  Agent &agent(Napi::Env env) {
    if (!agent_) throw Napi::Error::New(env, "agent is closed");
    return *agent_;
  }

  // setNfFreers([[start: bigint, end: bigint], ...])
  Napi::Value SetNfFreers(const Napi::CallbackInfo &info) {
    std::vector<std::pair<uint64_t, uint64_t>> freers;
    Napi::Array a = info[0].As<Napi::Array>();
    bool lossless;
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Array r = a.Get(i).As<Napi::Array>();
      freers.push_back(
          {r.Get(0u).As<Napi::BigInt>().Uint64Value(&lossless), r.Get(1u).As<Napi::BigInt>().Uint64Value(&lossless)});
    }
    agent(info.Env()).set_nf_freers(freers);
    return info.Env().Undefined();
  }

  // attachDrops() -> "" or why not
  Napi::Value AttachDrops(const Napi::CallbackInfo &info) {
    return Napi::String::New(info.Env(), agent(info.Env()).attach_drops());
  }

  // attachHooks(path, [[pf, hooknum], ...]) -> a link id per hook (0: not attached); throws when the namespace
  // cannot be entered
  Napi::Value AttachHooks(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::vector<std::pair<int, int>> hooks;
    Napi::Array a = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Array h = a.Get(i).As<Napi::Array>();
      hooks.push_back({h.Get(0u).As<Napi::Number>().Int32Value(), h.Get(1u).As<Napi::Number>().Int32Value()});
    }
    std::string error;
    std::vector<int> ids = agent(env).attach_hooks(info[0].As<Napi::String>(), hooks, &error);
    if (!error.empty()) throw Napi::Error::New(env, error);
    Napi::Array out = Napi::Array::New(env, ids.size());
    for (size_t i = 0; i < ids.size(); i++) out.Set(i, ids[i]);
    return out;
  }

  Napi::Value Detach(const Napi::CallbackInfo &info) {
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<int> ids;
    for (uint32_t i = 0; i < a.Length(); i++) ids.push_back(a.Get(i).As<Napi::Number>().Int32Value());
    agent(info.Env()).detach(ids);
    return info.Env().Undefined();
  }

  // counts() -> { keys: [{location: bigint, netns, ifindex, reason, port, hook, family, proto, packets, bytes}],
  //               unkeyed: {packets, bytes}, samplesLost }
  Napi::Value Counts(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Agent &a = agent(env);
    std::vector<DropCount> counts = a.counts();
    Napi::Array keys = Napi::Array::New(env, counts.size());
    for (size_t i = 0; i < counts.size(); i++) {
      const DropCount &d = counts[i];
      Napi::Object o = key_object(env, d.key);
      o.Set("packets", (double)d.count.packets);
      o.Set("bytes", (double)d.count.bytes);
      keys.Set(i, o);
    }
    pathtrace_drop_count u = a.unkeyed();
    Napi::Object unkeyed = Napi::Object::New(env);
    unkeyed.Set("packets", (double)u.packets);
    unkeyed.Set("bytes", (double)u.bytes);
    Napi::Object out = Napi::Object::New(env);
    out.Set("keys", keys);
    out.Set("unkeyed", unkeyed);
    out.Set("samplesLost", (double)a.lost(PT_AGENT_SAMPLES_LOST));
    return out;
  }

  Napi::Value NetfilterLinks(const Napi::CallbackInfo &info) {
    return Napi::Boolean::New(info.Env(), agent(info.Env()).netfilter_links());
  }

  // samples() -> [{key, saddr: Uint8Array(16), daddr, sport, dport, len}]: first drops of new keys
  Napi::Value Samples(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    std::vector<pathtrace_drop_sample> samples = agent(env).samples();
    Napi::Array out = Napi::Array::New(env, samples.size());
    for (size_t i = 0; i < samples.size(); i++) {
      const pathtrace_drop_sample &s = samples[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("key", key_object(env, s.key));
      o.Set("saddr", Napi::Buffer<uint8_t>::Copy(env, s.saddr, sizeof(s.saddr)));
      o.Set("daddr", Napi::Buffer<uint8_t>::Copy(env, s.daddr, sizeof(s.daddr)));
      o.Set("sport", s.sport);
      o.Set("dport", s.dport);
      o.Set("len", s.len);
      out.Set(i, o);
    }
    return out;
  }

  // forgetNetns(inode) -> counts deleted
  Napi::Value ForgetNetns(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    return Napi::Number::New(env, (double)agent(env).forget_netns(info[0].As<Napi::Number>().Uint32Value()));
  }

  static Napi::Object key_object(Napi::Env env, const pathtrace_drop_key &k) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("location", Napi::BigInt::New(env, (uint64_t)k.location));
    o.Set("netns", k.netns);
    o.Set("ifindex", k.ifindex);
    o.Set("reason", k.reason);
    o.Set("port", k.port);
    o.Set("hook", k.hook);
    o.Set("family", k.family);
    o.Set("proto", k.proto);
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    agent_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<Agent> agent_;
};

Napi::Value KernelFeatures(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto f = probe_kernel();
  Napi::Object o = Napi::Object::New(env);
  o.Set("btf", f.btf);
  o.Set("netfilterLinks", f.netfilter_links);
  if (!f.btf) o.Set("btfError", f.btf_error);
  return o;
}

// libbpfVersion() -> "v1.4": the libbpf the addon runs with (the one carried beside it).
Napi::Value LibbpfVersion(const Napi::CallbackInfo &info) {
  return Napi::String::New(info.Env(), libbpf_version_string());
}

// setLibbpfDebug(on): libbpf's messages to stderr (--debug).
Napi::Value SetLibbpfDebug(const Napi::CallbackInfo &info) {
  set_libbpf_debug(info[0].ToBoolean());
  return info.Env().Undefined();
}

Napi::Value KernelEnum(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  for (auto &[name, value] : kernel_enum(info[0].As<Napi::String>())) o.Set(name, (double)value);
  return o;
}

Napi::Value Interfaces(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string error;
  auto list = interfaces(info[0].As<Napi::String>(), &error);
  if (!error.empty()) throw Napi::Error::New(env, error);
  Napi::Object o = Napi::Object::New(env);
  for (auto &[index, name] : list) o.Set(index, name);
  return o;
}

// readInNetns(netnsPath, [file...]) -> [text...]
Napi::Value ReadInNetns(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<std::string> files;
  for (uint32_t i = 0; i < list.Length(); i++) files.push_back(list.Get(i).As<Napi::String>());
  std::string error;
  auto texts = read_in_netns(info[0].As<Napi::String>(), files, &error);
  if (!error.empty()) throw Napi::Error::New(env, error);
  Napi::Array out = Napi::Array::New(env, texts.size());
  for (size_t i = 0; i < texts.size(); i++) out.Set(i, texts[i]);
  return out;
}

// devicePrograms(netnsPath, ifindex) -> [{attach, id, name, tag}]: the XDP and tcx programs on that device.
Napi::Value DevicePrograms(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string error;
  auto list = device_programs(info[0].As<Napi::String>(), info[1].As<Napi::Number>().Uint32Value(), &error);
  if (!error.empty()) throw Napi::Error::New(env, error);
  Napi::Array out = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); i++) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("attach", list[i].attach);
    p.Set("id", list[i].id);
    p.Set("name", list[i].name);
    p.Set("tag", list[i].tag);
    out.Set(i, p);
  }
  return out;
}

// nftablesWatch(netnsPath) -> fd: a socket that hears of every ruleset change in that namespace.
Napi::Value NftablesWatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string error;
  int fd = nftables_watch(info[0].As<Napi::String>(), &error);
  if (fd < 0)
    throw Napi::Error::New(env, error.empty() ? std::string("cannot watch the ruleset: ") + strerror(-fd) : error);
  return Napi::Number::New(env, fd);
}

// nftablesChanges(fd) -> messages read since the last call (0: no change).
Napi::Value NftablesChanges(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), nftables_changes(info[0].As<Napi::Number>().Int32Value()));
}

// closeFd(fd)
Napi::Value CloseFd(const Napi::CallbackInfo &info) {
  close(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// clocks() -> [CLOCK_REALTIME ns, CLOCK_MONOTONIC ns] read back to back: BPF
// times are monotonic; this pair turns them into wall-clock times to the µs.
Napi::Value Clocks(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct timespec rt, mono;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &rt);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::BigInt::New(env, static_cast<int64_t>(rt.tv_sec * 1000000000LL + rt.tv_nsec)));
  out.Set(1u, Napi::BigInt::New(env, static_cast<int64_t>(mono.tv_sec * 1000000000LL + mono.tv_nsec)));
  return out;
}

// bpf/record.h as compiled, for test/unit/record-layout.test.ts: what src/trace/record.generated.ts must say.
Napi::Value RecordLayout(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object fields = Napi::Object::New(env), points = Napi::Object::New(env), constants = Napi::Object::New(env);
  auto field = [&](const char *name, size_t offset, size_t size) {
    Napi::Object f = Napi::Object::New(env);
    f.Set("offset", (double)offset);
    f.Set("size", (double)size);
    fields.Set(name, f);
  };
  auto point = [&](const char *key, int id, const char *name, const char *group) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("id", id);
    p.Set("name", name);
    p.Set("group", group);
    points.Set(key, p);
  };
#define PT_FIELD(type, name, ...) field(#name, offsetof(pathtrace_record, name), sizeof(pathtrace_record::name));
  PATHTRACE_RECORD_FIELDS(PT_FIELD, PT_FIELD)
  PATHTRACE_RECORD_UNION(PT_FIELD, PT_FIELD)
#undef PT_FIELD
  Napi::Object bytesFields = Napi::Object::New(env);
#define PT_FIELD(type, name, ...) bytesFields.Set(#name, (double)offsetof(pathtrace_bytes, name));
  PATHTRACE_BYTES_FIELDS(PT_FIELD, PT_FIELD)
#undef PT_FIELD
#define PT_POINT(key, id, name, group) point(#key, PT_POINT_##key, name, group);
  PATHTRACE_POINTS(PT_POINT)
#undef PT_POINT
#define PT_CONSTANT(name) constants.Set(#name, (double)(name));
  PATHTRACE_CONSTANTS(PT_CONSTANT)
#undef PT_CONSTANT
  Napi::Object o = Napi::Object::New(env);
  o.Set("size", (double)sizeof(pathtrace_record));
  o.Set("fields", fields);
  o.Set("points", points);
  o.Set("constants", constants);
  o.Set("bytesHeader", (double)offsetof(pathtrace_bytes, data));
  o.Set("bytesFields", bytesFields);
  return o;
}

// compileExpression(text, [library...]) -> Uint8Array of classic BPF for raw IP; throws libpcap's message.
Napi::Value CompileExpression(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<std::string> libraries;
  for (uint32_t i = 0; i < list.Length(); i++) libraries.push_back(list.Get(i).As<Napi::String>());
  try {
    auto prog = compile_expression(info[0].As<Napi::String>(), libraries);
    auto out = Napi::Uint8Array::New(env, prog.size() * sizeof(pathtrace_expr_insn));
    memcpy(out.Data(), prog.data(), out.ByteLength());
    return out;
  } catch (const std::exception &e) {
    throw Napi::Error::New(env, e.what());
  }
}

// testExpression(program, [packet...]) -> [1 | 0 | -1...]: the kernel interpreter's answers.
Napi::Value TestExpression(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<std::vector<uint8_t>> packets;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Uint8Array p = list.Get(i).As<Napi::Uint8Array>();
    packets.emplace_back(p.Data(), p.Data() + p.ByteLength());
  }
  try {
    auto answers = test_expression(program_of(info[0]), packets);
    Napi::Array out = Napi::Array::New(env, answers.size());
    for (size_t i = 0; i < answers.size(); i++) out.Set(i, answers[i]);
    return out;
  } catch (const std::exception &e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  set_libbpf_debug(false);  // libbpf's messages are kept for load errors, not printed
  exports.Set("Tracer", TracerWrap::Define(env));
  exports.Set("Agent", AgentWrap::Define(env));
  exports.Set("kernelFeatures", Napi::Function::New(env, KernelFeatures));
  exports.Set("kernelEnum", Napi::Function::New(env, KernelEnum));
  exports.Set("libbpfVersion", Napi::Function::New(env, LibbpfVersion));
  exports.Set("setLibbpfDebug", Napi::Function::New(env, SetLibbpfDebug));
  exports.Set("interfaces", Napi::Function::New(env, Interfaces));
  exports.Set("readInNetns", Napi::Function::New(env, ReadInNetns));
  exports.Set("devicePrograms", Napi::Function::New(env, DevicePrograms));
  exports.Set("recordLayout", Napi::Function::New(env, RecordLayout));
  exports.Set("clocks", Napi::Function::New(env, Clocks));
  exports.Set("nftablesWatch", Napi::Function::New(env, NftablesWatch));
  exports.Set("nftablesChanges", Napi::Function::New(env, NftablesChanges));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("compileExpression", Napi::Function::New(env, CompileExpression));
  exports.Set("testExpression", Napi::Function::New(env, TestExpression));
  return exports;
}

}  // namespace

NODE_API_MODULE(pathtrace, Init)
