#!/usr/bin/env bash
# Installs what pathtrace needs on Debian 12 (as root) and builds it.
# Idempotent: packages already present are not reinstalled; the build is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: must run as root (installs Debian packages)" >&2
  exit 1
fi

# libbpf >= 1.2 (netfilter links) and a matching bpftool only exist in bookworm-backports.
backports=/etc/apt/sources.list.d/pathtrace-bookworm-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  log "adding bookworm-backports to apt sources ($backports)"
  . scripts/debian-archive.sh
  uri=$(debian_archive_uri)
  [ -n "$uri" ] || { echo "setup: no apt source for bookworm in /etc/apt/sources.list{,.d}: cannot add bookworm-backports" >&2; exit 1; }
  cat > "$backports" <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_updated=
fi

# nginx: the app-response lab scenario (demo app-response); ethtool: GRO in the lab; tmux: the UI test;
# tshark: reads back what --write wrote; iperf3: the benchmark's stream; clang-format: npm run lint.
packages=(clang llvm libelf-dev zlib1g-dev libpcap0.8-dev pkg-config make cmake g++ iproute2 iptables nftables tcpdump nginx ethtool tmux tshark iperf3 clang-format)
# fail2ban and ipset: test/e2e/fail2ban.test.ts runs the real fail2ban (its service is not started: policy-rc.d below).
packages+=(fail2ban ipset)
# The kernel matrix (scripts/kernels, npm run test:kernels): qemu, the initramfs' busybox and cpio, depmod/modprobe
# for Debian's kernel packages, xz for their compressed modules.
packages+=(qemu-system-x86 busybox-static cpio kmod xz-utils)
# The packaged-install test (npm run test:package): a minimal Debian root for its server; the arm64 one
# boots in qemu-system-aarch64 (qemu-system-arm).
packages+=(debootstrap qemu-system-arm)
# node-gyp (npm run build:gyp, test/builds): gyp is Python.
packages+=(python3)
# prometheus and promtool: test/e2e/agent.test.ts scrapes the agent with the real server (its service is not
# started: policy-rc.d below; the test runs its own, on 127.0.0.1).
packages+=(prometheus)
# podman and runc: test/e2e/containers.test.ts traces real containers by name (runc: this machine's cgroups refuse
# crun); busybox-static above is their image.
packages+=(podman runc)
# chromium: test/e2e/report.test.ts draws the HTML report headless and reads the screenshot back.
packages+=(chromium)
backported=(libbpf-dev bpftool)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The backported packages also count as missing when the installed version is too old.
have_libbpf=$(dpkg-query -W -f='${Version}' libbpf-dev 2>/dev/null || true)
if [ -z "$have_libbpf" ] || dpkg --compare-versions "$have_libbpf" lt '1:1.2'; then
  missing+=(libbpf-dev/bookworm-backports libbpf1/bookworm-backports)
fi
have_bpftool=$(dpkg-query -W -f='${Version}' bpftool 2>/dev/null || true)
if [ -z "$have_bpftool" ] || dpkg --compare-versions "$have_bpftool" lt '7.2'; then
  missing+=(bpftool/bookworm-backports)
fi

if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packages such as nginx start their service on install; the lab runs its own
  # nginx inside a namespace, so keep the host's services as they are.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error --ignore-scripts
fi

log "building"
npm run --silent build
log "ready: run 'npx pathtrace --help'"
