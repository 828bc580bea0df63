#!/bin/bash
# Runs inside the test VM (started by msb-vmtest-boot, baked into the image):
#   runner.sh IN OUT
# IN holds scenarios.list ("INDEX NAME TIMEOUT" lines), scenarios/, lib.sh, fixtures/ and bin/ or deb/.
# For each scenario writes OUT/scenarios/NAME/{log,rc,elapsed,summary}. Exit 0 when none failed.
set -u
in=$1 out=$2
mkdir -p "$out/scenarios"
export MSB_IN=$in MSB_LIB=$in/lib.sh MSB_FIXTURES=$in/fixtures

if [[ -x $in/bin/maas-snapshot-backup ]]; then
  install -m 0755 "$in/bin/maas-snapshot-backup" /usr/bin/maas-snapshot-backup
elif compgen -G "$in/deb/*.deb" >/dev/null; then
  dpkg -i "$in"/deb/*.deb >"$out/dpkg.log" 2>&1 || { echo "dpkg -i failed"; cat "$out/dpkg.log"; }
fi
[[ -x $in/bin/swift-backtrace-static ]] && install -D -m 0755 "$in/bin/swift-backtrace-static" /usr/local/libexec/swift-backtrace-static
if command -v maas-snapshot-backup >/dev/null; then
  ldd "$(command -v maas-snapshot-backup)" >"$out/ldd.txt" 2>&1
fi

failed=0
while read -r index name limit; do
  [[ -n $name ]] || continue
  d=$out/scenarios/$name
  mkdir -p "$d"
  echo "== $name (limit ${limit}s)" >/dev/console
  start=$(date +%s.%N)
  # The log goes to the console too (the host's console.log): progress is visible while it runs.
  : >"$d/log"
  ( tail -n +1 -F "$d/log" 2>/dev/null | sed -u "s/^/[$name] /" ) >/dev/console &
  tail_pid=$!
  (
    export MSB_SCENARIO=$name MSB_RESULTS=$d MSB_VG=msb$index
    export MSB_DATA_DISK=/dev/disk/by-id/virtio-msb-data$index
    cd /tmp && exec timeout -k 15 "$limit" bash "$in/scenarios/$name.sh"
  ) >"$d/log" 2>&1 </dev/null
  rc=$?
  sleep 1; pkill -P "$tail_pid" 2>/dev/null; kill "$tail_pid" 2>/dev/null
  end=$(date +%s.%N)
  echo "$rc" >"$d/rc"
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f\n", b - a }' >"$d/elapsed"
  [[ $rc == 124 || $rc == 137 ]] && echo "timed out after ${limit}s" >>"$d/summary"
  echo "== $name exit $rc" >/dev/console
  [[ $rc == 0 || $rc == 77 ]] || failed=$((failed + 1))
done <"$in/scenarios.list"
((failed == 0))
