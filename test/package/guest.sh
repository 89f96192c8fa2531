#!/bin/bash
# Run inside the minimal Debian server (test/package/server.test.ts boots it): what a user would type
# after `npm install -g pathtrace-<version>.tgz`. Sections start with "=== NAME" for the test to read.
set -uo pipefail

echo "=== version"
pathtrace --version

echo "=== installed"
# No build tools or development packages on this server. (iproute2 brings Debian 12's own libbpf 1.1 and
# libelf: the version section shows pathtrace runs with the libbpf it carries, not that one.)
for p in gcc g++ clang cmake make libbpf-dev libelf-dev bpftool nodejs tcpdump; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' && echo "installed: $p"
done
echo "checked"
echo "=== system-libbpf"
dpkg-query -W -f='${Version}\n' libbpf1 2>/dev/null || echo none

echo "=== expression"
# No libpcap on this server (nothing here installed tcpdump): an expression is refused in one line that says
# what to install; the options still trace (the section below).
pathtrace --duration 1 'tcp port 3306' 2>&1
echo "exit $?"

echo "=== doctor"
# What this server offers, read by pathtrace itself: no libpcap here, said with its cost and fix.
pathtrace doctor 2>&1
echo "exit $?"

echo "=== demo"
pathtrace demo local-in --plain 2>&1

echo "=== trace"
# A namespace lab by hand, as on a server: a client and a server over a veth pair, and an nftables rule
# dropping the server's port 3306.
ip netns add pkg-srv && ip netns add pkg-cli
ip link add veth-c netns pkg-cli type veth peer name veth-s netns pkg-srv
ip -n pkg-cli addr add 198.18.9.1/24 dev veth-c && ip -n pkg-srv addr add 198.18.9.2/24 dev veth-s
for ns in pkg-cli pkg-srv; do ip -n $ns link set lo up; done
ip -n pkg-cli link set veth-c up && ip -n pkg-srv link set veth-s up
# From a file: Debian 11's nft 0.9.8 reads `-f -` through /dev/stdin, which this VM's /dev does not have.
cat > /root/guard.nft <<'NFT'
table inet guard {
  chain input {
    type filter hook input priority filter;
    tcp dport 3306 drop
  }
}
NFT
ip netns exec pkg-srv nft -f /root/guard.nft
pathtrace --json --netns pkg-srv --port 3306 --count 2 --duration 90 > /root/trace.ndjson 2> /root/trace.err &
pt=$!
for _ in $(seq 300); do grep -q '"type":"ready"' /root/trace.ndjson 2>/dev/null && break; sleep 0.2; done
ip netns exec pkg-cli node -e '
  const s = require("net").connect(3306, "198.18.9.2");
  s.on("error", () => {});
  setTimeout(() => process.exit(0), 4000);'
wait $pt
echo "exit $?"
cat /root/trace.ndjson
echo "=== stderr"
cat /root/trace.err
ip netns del pkg-cli; ip netns del pkg-srv
echo "=== end"
