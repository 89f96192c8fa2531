#!/usr/bin/env bash
# minroot.sh [SUITE [ARCH]]: a minimal Debian root file system (debootstrap --variant=minbase) of SUITE (bookworm,
# Debian 12, by default; bullseye, Debian 11) for the packaged-install test, from this machine's own apt source
# for bookworm; cached. Prints its path. Beyond minbase: iproute2 and nftables (what a server has that pathtrace
# uses), iptables (the demos' rules), kmod (the VM loads its kernel's modules with it, as every booted Debian does).
# ARCH arm64: this machine cannot run arm64 programs (no binfmt_misc), so debootstrap's second stage, which runs
# the packages' maintainer scripts, cannot run here: every package is unpacked (--foreign, then dpkg-deb -x of
# the rest) and left unconfigured; what their scripts would have made that a server's programs read is made
# here (the users and groups base-passwd installs, the iptables commands its alternatives name).
set -euo pipefail
cache=${PATHTRACE_KERNELS_CACHE:-/var/cache/pathtrace-kernels}
suite=${1:-bookworm}
arch=${2:-amd64}
root=$cache/roots/$suite-minbase$([ "$arch" = amd64 ] || echo "-$arch")
log() { printf 'minroot.sh: %s\n' "$*" >&2; }

if [ ! -e "$root/.complete" ]; then
  . "$(dirname "$0")/../debian-archive.sh"
  uri=$(debian_archive_uri | head -n1)
  [ -n "$uri" ] || { log "no apt source with suite bookworm found in /etc/apt/sources.list{,.d}"; exit 1; }
  command -v debootstrap >/dev/null || { log "needs debootstrap (scripts/setup.sh installs it)"; exit 1; }
  log "debootstrap --variant=minbase --arch=$arch $suite from $uri"
  rm -rf "$root" && mkdir -p "$root"
  if [ "$arch" = amd64 ]; then
    debootstrap --variant=minbase --include=iproute2,nftables,iptables,kmod "$suite" "$root" "$uri" >&2
  else
    debootstrap --foreign --arch="$arch" --variant=minbase --include=iproute2,nftables,iptables,kmod \
      "$suite" "$root" "$uri" >&2
    for deb in "$root"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$root"; done
    for f in passwd group; do cp "$root/usr/share/base-passwd/$f.master" "$root/etc/$f"; done
    mkdir -p "$root/var/lib/dpkg/alternatives" "$root/etc/alternatives"
    for t in iptables ip6tables; do
      update-alternatives --quiet --root "$root" --install "/usr/sbin/$t" "$t" "/usr/sbin/$t-nft" 20 \
        --slave "/usr/sbin/$t-restore" "$t-restore" "/usr/sbin/$t-nft-restore" \
        --slave "/usr/sbin/$t-save" "$t-save" "/usr/sbin/$t-nft-save"
    done
  fi
  touch "$root/.complete"
fi
echo "$root"
