#!/usr/bin/env bash
# node-linux.sh [x64|arm64]: Node as npm ships it (the node-linux-<arch> package, the same version as this
# machine's Node: the addon is Node-API), for the roots the package is tried and built in (Debian 11's own
# nodejs is too old). Cached; prints the directory, whose bin/node runs on glibc 2.28 and later.
set -euo pipefail
arch=${1:-x64}
cache=${PATHTRACE_KERNELS_CACHE:-/var/cache/pathtrace-kernels}
version=$(node -p 'process.versions.node')
dir=$cache/node/node-linux-$arch-$version
if [ ! -x "$dir/bin/node" ]; then
  printf 'node-linux.sh: node-linux-%s@%s from the npm registry\n' "$arch" "$version" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$version" >/dev/null)
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  tar -xzf "$tmp"/node-linux-*.tgz -C "$dir.tmp" --strip-components=1
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
echo "$dir"
