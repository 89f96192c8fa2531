#!/usr/bin/env bash
# minroot.sh [SUITE]: a minimal Debian root file system (debootstrap --variant=minbase) of SUITE (bookworm,
# Debian 12, by default; bullseye, Debian 11) for the packaged-install test, from this machine's own apt source
# for bookworm; cached. Prints its path. Beyond minbase: iproute2
# and nftables (what a server has that pathtrace uses), iptables (the demos' rules), kmod (the VM loads its
# kernel's modules with it, as every booted Debian does).
set -euo pipefail
cache=${PATHTRACE_KERNELS_CACHE:-/var/cache/pathtrace-kernels}
suite=${1:-bookworm}
root=$cache/roots/$suite-minbase
log() { printf 'minroot.sh: %s\n' "$*" >&2; }

if [ ! -e "$root/.complete" ]; then
  . "$(dirname "$0")/../debian-archive.sh"
  uri=$(debian_archive_uri | head -n1)
  [ -n "$uri" ] || { log "no apt source with suite bookworm found in /etc/apt/sources.list{,.d}"; exit 1; }
  command -v debootstrap >/dev/null || { log "needs debootstrap (scripts/setup.sh installs it)"; exit 1; }
  log "debootstrap --variant=minbase $suite from $uri"
  rm -rf "$root" && mkdir -p "$root"
  debootstrap --variant=minbase --include=iproute2,nftables,iptables,kmod "$suite" "$root" "$uri" >&2
  touch "$root/.complete"
fi
echo "$root"
