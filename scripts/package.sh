#!/usr/bin/env bash
# npm run package: pathtrace-<version>.tgz, for `npm install -g ./pathtrace-<version>.tgz` on a linux-x64
# server with Node >= 20 and nothing else (no compiler, no libbpf or libelf packages, no network): the addon
# prebuilt (Node-API: one build for every Node >= 20) with the BPF object inside it (CO-RE), libbpf and
# libelf carried beside it, its JavaScript dependencies bundled. Run after scripts/setup.sh; prints the tarball's name.
set -euo pipefail
cd "$(dirname "$0")/.."

npm run --silent build >&2
# The carried libraries: what they are, their licences and where their source is.
src() { dpkg-query -W -f='${source:Package} ${source:Version}' "$1"; }
cat > THIRD-PARTY.md <<NOTICE
# Libraries carried in build/Release

Copied from this build's Debian packages; their source is Debian's source package of the same version
(\`apt-get source <package>=<version>\`).

| file | from | licence |
|---|---|---|
| libbpf.so.1 | $(src libbpf1) | LGPL-2.1 OR BSD-2-Clause |
| libelf.so.1 | $(src libelf1) | GPL-2.0-or-later OR LGPL-3.0-or-later |

The BPF object inside pathtrace.node is GPL-2.0-only, as is pathtrace.
NOTICE
npm pack --silent --pack-destination .
