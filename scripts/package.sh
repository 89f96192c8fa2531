#!/usr/bin/env bash
# npm run package: pathtrace-<version>.tgz, for `npm install -g ./pathtrace-<version>.tgz` on a linux-x64 or
# linux-arm64 server with Node >= 20 and nothing else (no compiler, no libbpf or libelf packages, no network; glibc
# 2.28 or later, as Node 20 needs): the addon prebuilt for each (Node-API: one build for every Node >= 20) with
# the BPF objects inside it (CO-RE), libbpf and libelf carried beside it, its JavaScript dependencies bundled.
# Run after scripts/setup.sh; prints the tarball's name.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run --silent build >&2
# The addons as the package carries them: built for glibc 2.28 in a Debian 11 root (scripts/prebuild.sh).
rows=
for arch in x64 arm64; do
  prebuilt=$(bash scripts/prebuild.sh "$arch")
  from() { sed -n "s/^$1: //p" "$prebuilt/SOURCES"; }
  rows+="| linux-$arch/libbpf.so.1 | $(from libbpf.so.1) | LGPL-2.1 OR BSD-2-Clause |
| linux-$arch/libelf.so.1 | $(from libelf.so.1) | GPL-2.0-or-later OR LGPL-3.0-or-later |
"
done
cat > THIRD-PARTY.md <<NOTICE
# Libraries carried in prebuilds/

Compiled by scripts/prebuild.sh from the upstream tarballs of Debian's source packages
(\`apt-get source <package>=<version>\`), unpatched:

| file | built from | licence |
|---|---|---|
${rows%$'\n'}

The BPF objects inside each pathtrace.node are GPL-2.0-only, as is pathtrace.
NOTICE
npm pack --silent --pack-destination .
