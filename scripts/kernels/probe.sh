#!/usr/bin/env bash
# probe.sh: what pathtrace can hook on the running kernel. Meant for a guest:
#   bash scripts/kernels/boot.sh 6.1 bash scripts/kernels/probe.sh
# Prints: modules loading on demand (veth, nf_tables, ip_tables), bpftool's feature probe, the netfilter functions
# in BTF and kallsyms, the tracepoint prototypes pathtrace uses, module BTF, and whether fentry/kprobe attach.
set -uo pipefail
[ -n "${PATHTRACE_KERNEL:-}" ] || { echo "probe.sh: changes netns, links and rules: run it in a VM (boot.sh)" >&2; exit 2; }
section() { printf '\n== %s\n' "$*"; }

section "kernel"
uname -r
grep -E '^(# )?CONFIG_(KPROBES|FUNCTION_TRACER|DEBUG_INFO_BTF|DEBUG_INFO_BTF_MODULES|NETFILTER_BPF_LINK)[= ]' \
  "/boot/config-$(uname -r)"

section "modules on demand"
ip netns add t1 && ip link add name a type veth peer name b && ip link del dev a && ip netns del t1 && echo "veth: ok"
nft add table inet x && nft list ruleset && nft delete table inet x && echo "nft: ok"
iptables-legacy -L -n >/dev/null && ip6tables-legacy -L -n >/dev/null && echo "iptables-legacy: ok"
lsmod | awk 'NR > 1 { print $1 }' | sort | tr '\n' ' '; echo

section "bpftool feature probe kernel (filtered)"
bpftool feature probe kernel 2>/dev/null | grep -i -E 'netfilter|tracing|kprobe|ringbuf' | grep -v '^\s*- '

section "module BTF"
for m in nf_tables ip_tables ip6_tables; do
  [ -e "/sys/kernel/btf/$m" ] && echo "$m: /sys/kernel/btf/$m" || echo "$m: no module BTF"
done

section "BTF and kallsyms"
dump=/tmp/btf.raw
bpftool btf dump file /sys/kernel/btf/vmlinux format raw > "$dump"
for m in nf_tables ip_tables ip6_tables; do
  [ -e "/sys/kernel/btf/$m" ] &&
    bpftool -B /sys/kernel/btf/vmlinux btf dump file "/sys/kernel/btf/$m" format raw | sed "s/^\[/[$m:/" >> "$dump"
done
funcs="nf_hook_slow nft_do_chain ipt_do_table ip6t_do_table ip_local_deliver_finish ip6_input_finish
  ip_protocol_deliver_rcu ip6_protocol_deliver_rcu ip_rcv_finish ip_forward_finish"
typedefs="btf_trace_kfree_skb btf_trace_consume_skb btf_trace_tcp_send_reset btf_trace_qdisc_enqueue
  btf_trace_sock_recv_length btf_trace_napi_gro_receive_entry btf_trace_netif_rx"
python3 - "$dump" $funcs -- $typedefs <<'PY'
import re, sys
dump, args = sys.argv[1], sys.argv[2:]
funcs, typedefs = args[:args.index('--')], args[args.index('--') + 1:]
# Module BTF is split BTF: its ids continue vmlinux's, and each module numbers its own types from the same start.
types, where, last = {}, {}, None   # (origin, id) -> [kind, name, attrs, members]; name -> (origin, id)
for line in open(dump):
    m = re.match(r"\[(?:(\w+):)?(\d+)\] (\w+) '([^']*)'(.*)", line)
    if m:
        mod, tid, kind, name, rest = m.groups()
        key = (mod or 'vmlinux', int(tid))
        last = types[key] = [kind, name, dict(re.findall(r'(\w+)=(\S+)', rest)), []]
        if kind in ('FUNC', 'TYPEDEF'):
            where.setdefault(name, key)
    elif last and line.startswith('\t'):
        m = re.match(r"\t'([^']*)' type_id=(\d+)", line)
        if m: last[3].append((m.group(1), int(m.group(2))))

def get(mod, tid):
    return types.get((mod, tid)) or types[('vmlinux', tid)]

def c(mod, tid):
    if tid == 0: return 'void'
    kind, name, attrs, _ = get(mod, tid)
    if kind == 'PTR': return c(mod, int(attrs['type_id'])) + ' *'
    if kind in ('CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG'): return kind.lower() + ' ' + c(mod, int(attrs['type_id']))
    if kind in ('STRUCT', 'UNION', 'ENUM', 'ENUM64', 'FWD'): return f"{kind.lower().rstrip('64')} {name}"
    return name

def proto(key):   # a FUNC, or a TYPEDEF of a pointer to a FUNC_PROTO
    mod, tid = key
    kind, _, attrs, params = get(mod, tid)
    while kind in ('FUNC', 'PTR', 'TYPEDEF'):
        tid = int(attrs['type_id']); kind, _, attrs, params = get(mod, tid)
    return '(' + ', '.join((c(mod, t) + ' ' + n).replace('* ', '*') if n != '(anon)' else c(mod, t) for n, t in params) + ')'

syms = {}
for line in open('/proc/kallsyms'):
    f = line.split()
    if f[1].lower() == 't': syms.setdefault(f[2], f[3] if len(f) > 3 else '')
try: ftrace = set(l.split()[0] for l in open('/sys/kernel/tracing/available_filter_functions'))
except OSError: ftrace = set()
print(f"{'function':26} {'BTF FUNC':12} {'kallsyms':14} ftrace")
for f in funcs:
    b = where.get(f, ('absent',))[0]
    print(f"{f:26} {b:12} {('yes ' + syms[f]) if f in syms else 'absent':14} {'yes' if f in ftrace else 'no'}")
for f in ('ipt_do_table', 'ip6t_do_table', 'nf_hook_slow', 'nft_do_chain'):
    if f in where: print(f"{f}{proto(where[f])}")
for t in typedefs:
    print(f"{t}{proto(where[t])}" if t in where else f"{t}: absent")
PY

section "attach (bpftool prog load ... autoattach)"
tmp=$(mktemp -d)
for p in fentry/nf_hook_slow fentry/nft_do_chain fentry/ipt_do_table kprobe/nf_hook_slow kprobe/nft_do_chain kprobe/ipt_do_table; do
  o=$tmp/${p//\//_}.o
  printf '#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\nSEC("%s") int p(void *ctx) { return 0; }\nchar LICENSE[] SEC("license") = "GPL";\n' "$p" |
    clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -x c -c -o "$o" - || continue
  if err=$(bpftool prog load "$o" "/sys/fs/bpf/probe" autoattach 2>&1); then echo "$p: attached"
  else echo "$p: FAILED: $(grep -v -E '^(libbpf: prog|-- END|$)' <<< "$err" | tail -n 2 | tr '\n' ' ')"; fi
  rm -rf /sys/fs/bpf/probe
done
rm -rf "$tmp"
for f in nf_hook_slow nft_do_chain ipt_do_table; do   # independent of BPF links (which 5.10 cannot pin for kprobes)
  echo "p:pathtrace_probe $f" >> /sys/kernel/tracing/kprobe_events && echo "tracefs kprobe $f: ok"
  echo "-:pathtrace_probe" >> /sys/kernel/tracing/kprobe_events
done
