#!/usr/bin/env bash
# 100,000 idle sessions (issue 20, item 5), in a virtual machine of its own.
#
# This container's descriptor hard limit is 20,000 and it lacks CAP_SYS_RESOURCE, so no
# process here can hold 100,000 sessions (two descriptors each: the client's and petrel's).
# A virtual machine has its own limits: this script boots Debian's kernel with an initramfs of
# busybox, the release petrel and bench/loadgen (with the shared libraries they link), and
# inside it, as root, raises the limit and opens
#   - SESSIONS plain sessions (greeting read, EHLO answered), then holds them, and
#   - TLS_SESSIONS sessions that also do STARTTLS (TLS 1.3, ECDSA P-256) and EHLO again,
# spread over 127.0.0.1 to 127.0.0.8 (LOADGEN_SOURCES) so the client has ports enough. It
# prints petrel's resident memory before and after, the sessions open and the errors.
#
# The guest has no network device (qemu -nic none): everything talks to its own loopback.
# Its data_dir is a tmpfs (the sessions store no mail). Installs
# qemu-system-x86 and cpio from Debian when missing, and takes Debian's kernel
# (linux-image-amd64's) and busybox-static with apt-get download and dpkg -x, uninstalled.
#
# Run: bash bench/sessions_vm.sh (after cargo build --release and bench/loadgen's build;
# ONLY=sessions bench/run.sh does both). SESSIONS, TLS_SESSIONS and VM_MEMORY (default 3G:
# enough for both sides of 100,000 sessions; more boots slowly under emulation) may be set.
# Under emulation on 2 cores the whole run takes about 17 minutes.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SESSIONS=${SESSIONS:-100000}
TLS_SESSIONS=${TLS_SESSIONS:-10000}
VM_MEMORY=${VM_MEMORY:-3G}
PETREL=$ROOT/target/release/petrel
LOADGEN=$HERE/loadgen/target/release/petrel-loadgen

# KVM when the CPU offers virtualization to this machine; else qemu's emulation (TCG), slower
# but the same memory: the figures are the guest's resident memory, not its speed.
if [ -c /dev/kvm ] && grep -qE "\b(vmx|svm)\b" /proc/cpuinfo; then
  ACCEL=(-enable-kvm -cpu host)
else
  ACCEL=(-accel tcg,thread=multi -cpu max)
fi
[ -x "$PETREL" ] && [ -x "$LOADGEN" ] || { echo "sessions_vm.sh: build petrel and bench/loadgen first" >&2; exit 1; }
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v cpio >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    qemu-system-x86 cpio >/dev/null
fi
# Debian's kernel and busybox, extracted (not installed) once into bench/results/vm-parts.
PARTS=$HERE/results/vm-parts
if [ ! -x "$PARTS/root/bin/busybox" ] || ! ls "$PARTS"/root/boot/vmlinuz-* >/dev/null 2>&1; then
  rm -rf "$PARTS" && mkdir -p "$PARTS"
  kernel_package=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
  (cd "$PARTS" && apt-get download -q "$kernel_package" busybox-static >/dev/null)
  for deb in "$PARTS"/*.deb; do dpkg -x "$deb" "$PARTS/root"; done
  # Only the kernel image and busybox are used: not the 400 MB of modules.
  rm -rf "$PARTS"/*.deb "$PARTS/root/lib" "$PARTS/root/usr"
fi
KERNEL=$(ls "$PARTS"/root/boot/vmlinuz-* | sort -V | tail -n 1)

WORK=$(mktemp -d "$HERE/results/vm-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
IMAGE=$WORK/root
mkdir -p "$IMAGE"/{bin,dev,proc,sys,tmp,data,etc}

# The programs and every shared library they load, at the same paths.
cp "$PARTS/root/bin/busybox" "$IMAGE/bin/busybox"
# Without their debug information (petrel's is most of its 100 MB, which the guest would
# unpack slowly); what is loaded and run is the same.
strip -o "$IMAGE/bin/petrel" "$PETREL"
strip -o "$IMAGE/bin/petrel-loadgen" "$LOADGEN"
for library in $( (ldd "$PETREL"; ldd "$LOADGEN") | grep -o '/[^ ]*' | sort -u); do
  mkdir -p "$IMAGE$(dirname "$library")"
  cp -L "$library" "$IMAGE$library"
done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=petrel.bench.test -keyout "$IMAGE/etc/key.pem" -out "$IMAGE/etc/cert.pem" \
  2>/dev/null

# bench.py's configuration of petrel, with room for the sessions. Opening 100,000 sessions one
# after another takes minutes under emulation: the first must not time out before the last is
# open (idle_timeout, in [limits], where `extra` goes).
petrel_config() { # petrel_config FILE EXTRA
  (cd "$HERE" && python3 -c 'import sys, bench
sys.stdout.write(bench.petrel_config("/data/petrel", 2525, max_connections=int(sys.argv[1]),
                                     extra=sys.argv[2]))' "$((SESSIONS + 1000))" "$2") >"$1"
}
petrel_config "$IMAGE/etc/plain.toml" 'idle_timeout = "1h"'
petrel_config "$IMAGE/etc/tls.toml" $'idle_timeout = "1h"\n[tls]\ncertificate = "/etc/cert.pem"\nprivate_key = "/etc/key.pem"'

cat >"$IMAGE/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs data /data
ip link set lo up
echo 1048576 > /proc/sys/fs/nr_open
ulimit -n 1048576
echo "1024 65000" > /proc/sys/net/ipv4/ip_local_port_range
echo 4096 > /proc/sys/net/core/somaxconn

rss() { grep VmRSS /proc/\$1/status | tr -s ' ' | cut -d ' ' -f 2; }

measure() { # measure NAME CONFIG SESSIONS [STARTTLS]
  rm -rf /data/petrel
  petrel serve --config /etc/\$2 2>/data/log-\$1 &
  pid=\$!
  tries=0
  until nc -z 127.0.0.1 2525 2>/dev/null || [ \$tries -ge 300 ]; do
    sleep 0.1; tries=\$((tries + 1))
  done
  sleep 1
  before=\$(rss \$pid)
  LOADGEN_SOURCES=8 LOADGEN_STARTTLS=\${4:-0} petrel-loadgen idle 127.0.0.1:2525 \$3 30 \
    >/data/open-\$1 2>/data/errors-\$1 &
  client=\$!
  tries=0
  until [ -s /data/open-\$1 ] || [ \$tries -ge 3000 ]; do
    sleep 0.1; tries=\$((tries + 1))
  done
  sleep 2
  after=\$(rss \$pid)
  wait \$client
  status=\$?
  echo "RESULT \$1 sessions=\$3 \$(cat /data/open-\$1) client_status=\$status rss_before_kib=\$before rss_after_kib=\$after"
  head -n 5 /data/errors-\$1
  kill \$pid; wait \$pid
  grep -i -m 5 "error\|lowered" /data/log-\$1
}

echo "GUEST \$(uname -r), \$(grep -c ^processor /proc/cpuinfo) CPUs, \$(grep MemTotal /proc/meminfo | tr -s ' ')"
measure plain plain.toml $SESSIONS
measure tls tls.toml $TLS_SESSIONS 1
echo DONE
poweroff -f
EOF
chmod 755 "$IMAGE/init"

(cd "$IMAGE" && find . | cpio -o -H newc --quiet | gzip -1) >"$WORK/initrd.gz"

timeout "${VM_TIMEOUT:-1800}" qemu-system-x86_64 "${ACCEL[@]}" -smp 2 -m "$VM_MEMORY" \
  -kernel "$KERNEL" -initrd "$WORK/initrd.gz" \
  -append "console=ttyS0 panic=-1 rdinit=/init" \
  -nographic -nic none -no-reboot </dev/null | stdbuf -oL tr -d '\r' | tee "$WORK/console.txt" \
  | grep -E "^(GUEST|RESULT|DONE)|error|failed|lowered" || true
cp "$WORK/console.txt" "$HERE/results/sessions-vm-console.txt"

results=$(grep -E "^RESULT" "$WORK/console.txt" || true)
[ -n "$results" ] || { echo "sessions_vm.sh: the guest gave no result" >&2; exit 1; }
echo "$results" | awk '{
  for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  printf "%s: %s of %s sessions open, %s errors, client status %s, RSS %d -> %d KiB, %.1f KiB per session\n",
    $2, v["open"], v["sessions"], v["errors"], v["client_status"], v["rss_before_kib"],
    v["rss_after_kib"], (v["rss_after_kib"] - v["rss_before_kib"]) / v["sessions"]
}'
