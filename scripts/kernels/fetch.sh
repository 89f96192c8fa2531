#!/usr/bin/env bash
# fetch.sh NAME: download Debian's kernel package for NAME (5.10, 6.1, 6.12; 6.1-arm64: Debian 12's arm64 kernel,
# with busybox-static for arm64 at busybox/bin/busybox in its tree, for boot.sh's initramfs), unpack it into the
# cache and run depmod on it. Prints "<unpacked tree> <kernel release>" on stdout; progress goes to stderr.
# Idempotent: a kernel already unpacked is reused without touching the network
# (PATHTRACE_KERNELS_REFRESH=1 resolves the suite's current kernel again).
set -euo pipefail

name=${1:?usage: fetch.sh NAME (5.10 | 6.1 | 6.12 | 6.1-arm64)}
cache=${PATHTRACE_KERNELS_CACHE:-/var/cache/pathtrace-kernels}
log() { printf 'fetch.sh: %s\n' "$*" >&2; }

arch=amd64
case $name in
  5.10) suite=bullseye ;;   # Debian 11
  6.1)  suite=bookworm ;;   # Debian 12
  6.12) suite=trixie ;;     # Debian 13
  6.1-arm64) suite=bookworm arch=arm64 ;;
  *) log "unknown kernel '$name' (known: 5.10 6.1 6.12 6.1-arm64)"; exit 2 ;;
esac

link=$cache/kernels/$name
if [ -z "${PATHTRACE_KERNELS_REFRESH:-}" ] && [ -e "$link/.complete" ]; then
  echo "$(readlink -f "$link") $(cat "$link/.complete")"
  exit 0
fi

# The archive URI is the one this machine's own sources use for bookworm (never a host name of ours).
. "$(dirname "$0")/../debian-archive.sh"
uri=$(debian_archive_uri | head -n1)
[ -n "$uri" ] || { log "no apt source with suite bookworm found in /etc/apt/sources.list{,.d}"; exit 1; }

# A private apt configuration: the machine's own sources, lists and caches stay untouched.
apt_dir=$cache/apt/$suite$([ $arch = amd64 ] || echo "-$arch")
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$cache/debs" "$cache/trees" "$cache/kernels"
echo "deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" > "$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
          -o "Dir::Cache::archives=$apt_dir/cache/archives" -o APT::Sandbox::User=root  # debs land in our cache dir
          -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch")
log "updating package lists of $suite from $uri"
apt-get "${apt_opts[@]}" -qq update >&2

# linux-image-<arch> depends on the concrete (signed) image package of the suite.
pkg=$(apt-cache "${apt_opts[@]}" show "linux-image-$arch" | sed -n 's/^Depends: //p' | head -n1 |
      tr ',' '\n' | sed -E 's/^ *([^ (|]+).*/\1/' | grep -m1 '^linux-image-')
[ -n "$pkg" ] || { log "cannot resolve linux-image-$arch in $suite"; exit 1; }
ver=$(apt-cache "${apt_opts[@]}" show "$pkg" | sed -n 's/^Version: //p' | head -n1)
log "$suite: linux-image-$arch -> $pkg $ver"

# The .deb of package $1 at version $2 in the cache, downloaded once.
download() {
  local deb
  deb=$(ls "$cache/debs/${1}_${2//:/%3a}_$arch.deb" "$cache/debs/${1}_${2//:/%3a}_all.deb" 2>/dev/null | head -n1 || true)
  if [ -z "$deb" ]; then
    (cd "$cache/debs" && apt-get "${apt_opts[@]}" -qq download "$1=$2" >&2)
    deb=$(ls "$cache/debs/${1}_${2//:/%3a}_"*.deb | head -n1)
    log "downloaded $(basename "$deb") ($(du -h "$deb" | cut -f1))"
  fi
  echo "$deb"
}
deb=$(download "$pkg" "$ver")

tree=$cache/trees/${pkg}_$ver
if [ ! -e "$tree/.complete" ]; then
  rm -rf "$tree" && mkdir -p "$tree"
  dpkg-deb -x "$deb" "$tree"
  # Newer packages put modules in usr/lib/modules; depmod -b and modprobe -d look in <base>/lib/modules.
  [ -e "$tree/lib" ] || ln -s usr/lib "$tree/lib"
  release=$(ls "$tree/lib/modules" | head -n1)
  [ -f "$tree/boot/vmlinuz-$release" ] || { log "no boot/vmlinuz-$release in $deb"; exit 1; }
  depmod -b "$tree" "$release"
  if [ $arch != amd64 ]; then  # the host's busybox cannot run in this guest's initramfs
    bb_ver=$(apt-cache "${apt_opts[@]}" show busybox-static | sed -n 's/^Version: //p' | head -n1)
    dpkg-deb -x "$(download busybox-static "$bb_ver")" "$tree/busybox"
  fi
  echo "$release" > "$tree/.complete"
fi
ln -sfn "$tree" "$link"
echo "$tree $(cat "$tree/.complete")"
