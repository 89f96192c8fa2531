# Sourced by setup.sh and kernels/fetch.sh: the Debian archive URI this machine's own apt sources use for
# bookworm, so that the project never names a mirror of its own.
debian_archive_uri() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    # deb822: a paragraph whose Suites include "bookworm" exactly.
    awk 'BEGIN { RS = ""; FS = "\n" }
      { uris = ""; hit = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^[ \t]*#/) continue
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Suites:/ && (" " $i " ") ~ /[ \t]bookworm[ \t]/) hit = 1
        }
        if (hit && uris != "") { split(uris, u, /[ \t]+/); print u[1]; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    # one-line format: deb [options] URI SUITE COMPONENTS...
    sed -E -n 's/^deb[ \t]+(\[[^]]*\][ \t]+)?([^ \t]+)[ \t]+bookworm[ \t].*/\2/p' "$f"
  done | head -n1
}
