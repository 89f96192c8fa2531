#!/usr/bin/env bash
# boot.sh NAME COMMAND...: run COMMAND as root under Debian's kernel NAME (see fetch.sh) in qemu, on a copy-on-write
# view of this machine's / (read-only 9p under a tmpfs overlay), in the caller's working directory and PATH.
# PATHTRACE_VM_ROOT=DIR boots DIR as the root instead (a minimal Debian root: minroot.sh), COMMAND run in /root.
# One argument is a bash script ('uname -r && ip link'); several are an exact argv (uname -r).
# COMMAND's stdout+stderr stream to stdout; its exit code is boot.sh's (124: timeout, 125: the VM failed).
# Env: PATHTRACE_VM_TIMEOUT (s, default 1200), PATHTRACE_VM_ACCEL (kvm|tcg; default kvm when /dev/kvm is usable),
# PATHTRACE_VM_MEM (default 3G), PATHTRACE_VM_CPUS (default 2), PATHTRACE_KERNELS_CACHE (see fetch.sh).
# An arm64 kernel (6.1-arm64) boots in qemu-system-aarch64's virt machine, with TCG: its root must be arm64 too.
# In the guest, PATHTRACE_KERNEL=NAME; PATH, LANG, TERM and PATHTRACE_*/NODE_* variables are passed through; the
# kernel package's tree is shared at /run/pathtrace/kernel (its modules, its config).
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: boot.sh NAME COMMAND..." >&2; exit 2; }
name=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
vmroot=${PATHTRACE_VM_ROOT:-/}
[ "$vmroot" = / ] && cwd=$PWD || cwd=/root
cache=${PATHTRACE_KERNELS_CACHE:-/var/cache/pathtrace-kernels}
log() { printf 'boot.sh: %s\n' "$*" >&2; }

read -r tree release < <(bash "$here/fetch.sh" "$name")
[ -n "${release:-}" ] || exit 125

# The initramfs: busybox, /init and the modules that 9p and overlay need, in load order (decompressed: busybox
# insmod does not unpack .ko.xz). Rebuilt when init or this script changes.
initrd=$cache/initramfs/$release.cpio.gz
if [ ! -s "$initrd" ] || [ "$here/init" -nt "$initrd" ] || [ "$0" -nt "$initrd" ]; then
  log "building $initrd"
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/dev" "$stage/modules" "$(dirname "$initrd")"
  # The kernel's own architecture's busybox (fetch.sh brings arm64's), else this machine's.
  bb=$tree/busybox/bin/busybox; [ -x "$bb" ] || bb=/bin/busybox
  cp "$bb" "$stage/bin/busybox"
  install -m 755 "$here/init" "$stage/init"
  mknod "$stage/dev/console" c 5 1
  modprobe -d "$tree" -S "$release" -a --show-depends virtio_pci 9pnet_virtio 9p overlay |
    awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r ko; do
      base=$(basename "$ko"); base=${base%.xz}; base=${base%.zst}
      case $ko in *.xz) xz -dc "$ko" ;; *.zst) zstd -qdc "$ko" ;; *) cat "$ko" ;; esac > "$stage/modules/$base"
      echo "$base" >> "$stage/modules/order"
    done
  touch "$stage/modules/order"
  # Its own temporary name: two guests of one release may boot at once (the matrix runs two at a time).
  (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.$$" && mv "$initrd.$$" "$initrd"
  rm -rf "$stage"
fi

# The xfer share carries the command in, and its output and exit code out. Nothing else of the host is writable.
xfer=$(mktemp -d "${TMPDIR:-/tmp}/pathtrace-vm.XXXXXX")
qemu_pid= watchdog=
cleanup() {
  [ -z "$watchdog" ] || kill "$watchdog" 2>/dev/null || true
  [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
  rm -rf "$xfer"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf 'NAME=%q\nRELEASE=%q\n' "$name" "$release" > "$xfer/guest.conf"
{
  echo "export HOME=/root PATHTRACE_KERNEL=$(printf %q "$name")"
  for v in PATH LANG TERM $(compgen -e | grep -E '^(PATHTRACE|NODE)_' || true); do
    [ -z "${!v+x}" ] || printf 'export %s=%q\n' "$v" "${!v}"
  done
  printf 'cd %q || exit 125\n' "$cwd"
  if [ $# -eq 1 ]; then printf '%s\n' "$1"; else printf 'exec'; printf ' %q' "$@"; echo; fi
} > "$xfer/run.sh"
: > "$xfer/out"

# KVM when /dev/kvm is usable, unless an earlier boot found it hanging (nested KVM can: see README.md).
accel=${PATHTRACE_VM_ACCEL:-}
case $release in *-arm64) accel=tcg ;; esac
if [ -z "$accel" ]; then
  [ -w /dev/kvm ] && [ ! -e "$cache/kvm-hangs" ] && accel=kvm || accel=tcg
fi
case $release in
  # cortex-a72 rather than max: TCG emulates max's pointer authentication slowly.
  *-arm64) qemu=(qemu-system-aarch64 -M virt -cpu cortex-a72) console=ttyAMA0 ;;
  # -arch-capabilities: nested KVM may refuse to set that MSR (qemu then aborts).
  *) qemu=(qemu-system-x86_64 -cpu "$([ "$accel" = kvm ] && echo host,-arch-capabilities || echo max)") console=ttyS0 ;;
esac

start=$(date +%s%N)
timeout -k 10 "${PATHTRACE_VM_TIMEOUT:-1200}" "${qemu[@]}" \
  -accel "$accel" -smp "${PATHTRACE_VM_CPUS:-2}" -m "${PATHTRACE_VM_MEM:-3G}" \
  -nodefaults -no-reboot -display none -monitor none -serial "file:$xfer/console" \
  -kernel "$tree/boot/vmlinuz-$release" -initrd "$initrd" \
  -append "console=$console quiet loglevel=3 panic=-1" \
  -virtfs "local,path=$vmroot,mount_tag=hostroot,readonly=on,security_model=none,multidevs=remap" \
  -virtfs "local,path=$tree,mount_tag=kernel,readonly=on,security_model=none" \
  -virtfs "local,path=$xfer,mount_tag=xfer,security_model=none" \
  < /dev/null > "$xfer/qemu.log" 2>&1 &
qemu_pid=$!
if [ "$accel" = kvm ] && [ -z "${PATHTRACE_VM_ACCEL:-}" ]; then
  # KVM boots in seconds; a guest not up after 60 s is stuck: remember that and go again with TCG.
  (sleep 60; [ -e "$xfer/booted" ] || { touch "$xfer/kvm-hangs"; kill "$qemu_pid"; }) 2>/dev/null &
  watchdog=$!
fi
tail -n +1 -s 0.2 -f --pid="$qemu_pid" "$xfer/out"
qemu_rc=0; wait "$qemu_pid" || qemu_rc=$?
qemu_pid=
secs=$(( ($(date +%s%N) - start) / 1000000 ))e-3

if [ -e "$xfer/kvm-hangs" ]; then
  log "KVM did not boot the guest in 60 s: using TCG from now on (rm $cache/kvm-hangs to try KVM again)"
  touch "$cache/kvm-hangs"; cleanup; trap - EXIT
  exec env PATHTRACE_VM_ACCEL=tcg bash "$0" "$name" "$@"
fi
if [ -s "$xfer/rc" ] && [ -e "$xfer/booted" ]; then
  rc=$(cat "$xfer/rc")
  log "$name ($release, $accel): booted in $(cat "$xfer/booted" 2>/dev/null || echo '?') s, exit $rc after $(printf %.1f "$secs") s"
  exit "$rc"
fi
[ "$qemu_rc" = 124 ] && log "$name: timed out after ${PATHTRACE_VM_TIMEOUT:-1200} s" || log "$name: the VM ended before $([ -e "$xfer/booted" ] && echo "the command's exit code" || echo 'running the command')"
log "qemu ($qemu_rc):"; sed 's/^/  /' "$xfer/qemu.log" >&2
log "console (last 40 lines):"; tail -n 40 "$xfer/console" | sed 's/^/  /' >&2
# A guest that never reached its command (qemu refused to start, memory was short on a shared machine, stage 1
# of init failed) ran nothing of the caller's: one more boot, once, rather than a red row for the machine's moment.
if [ "$qemu_rc" != 124 ] && [ ! -e "$xfer/booted" ] && [ -z "${PATHTRACE_VM_REBOOTED:-}" ]; then
  log "$name: the guest never ran the command: booting it once more"
  cleanup; trap - EXIT
  exec env PATHTRACE_VM_REBOOTED=1 bash "$0" "$name" "$@"
fi
[ "$qemu_rc" = 124 ] && exit 124 || exit 125
