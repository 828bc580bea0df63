#!/usr/bin/env bash
# Boot image benchmark (issue 24): a MAAS 3.5 region (the real 3.5.0 schema) whose image store holds
# SYNCED MiB of synced images and UPLOADED MiB of uploaded ones, all incompressible (random bytes,
# as squashfs and tgz images are). Prints, for `images: uploaded` (the default) and `images: all`:
# the archive size, the backup's duration and the restore's duration (same host: the live store is
# moved into the restored tree); then the archive step alone on the image store (incompressible
# data: stored deflate blocks) against `tar -cf - | pigz -6`. Figures only; nothing is checked.
#
# Usage (root): Benchmarks/backup/images.sh        (make bench-backup runs it after run.sh)
#   BENCH_IMAGES_SYNCED_MIB (default 2048; the issue's example region is 20480)
#   BENCH_IMAGES_UPLOADED_MIB (default 200)
#   MSB_BINARY, MSB_BENCH_ARCHIVE, BENCH_TMPDIR: as for run.sh (default: the release build in
#   .build-bench-backup, made when missing)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
testenv="$repo/Tests/Fixtures/testenv.sh"
pgbin=/usr/lib/postgresql/15/bin
synced=${BENCH_IMAGES_SYNCED_MIB:-2048} uploaded=${BENCH_IMAGES_UPLOADED_MIB:-200}
[ "$(id -u)" = 0 ] || { echo "images.sh: run as root (loop devices, mounts, PostgreSQL as postgres)" >&2; exit 77; }
[[ $synced =~ ^[1-9][0-9]*$ && $uploaded =~ ^[1-9][0-9]*$ ]] || { echo "images.sh: the sizes are MiB counts of at least 1" >&2; exit 64; }
[ -f "$repo/../shared/fixtures/maas-schema/maas-3.5.0.sql" ] || { echo "images.sh: ../shared/fixtures/maas-schema/maas-3.5.0.sql is absent: skipped"; exit 0; }
command -v pigz >/dev/null && command -v jq >/dev/null || { echo "images.sh: needs pigz and jq (run.sh installs them)" >&2; exit 69; }
build() { (cd "$repo" && swift build -c release --scratch-path .build-bench-backup --product "$1") >/dev/null 2>&1 || exit 1; }
bin=${MSB_BINARY:-$repo/.build-bench-backup/release/maas-snapshot-backup}
abin=${MSB_BENCH_ARCHIVE:-$repo/.build-bench-backup/release/msb-bench-archive}
[ -x "$bin" ] || { echo "building maas-snapshot-backup (release) ..."; build maas-snapshot-backup; }
[ -x "$abin" ] || { echo "building msb-bench-archive (release) ..."; build msb-bench-archive; }

base=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/msb-bench-images.XXXXXX")
chmod 755 "$base"
env="$base/env"
trap 'bash "$testenv" down "$env" >/dev/null 2>&1 || true; rm -rf "$base"' EXIT
echo "== images: $synced MiB synced, $uploaded MiB uploaded ($(date -u +%FT%TZ); load average $(cut -d' ' -f1-3 /proc/loadavg)) =="
TESTENV_SCHEMA=maas-3.5.0 TESTENV_BTRFS_SIZE=$(( (synced + uploaded) * 2 + 1024 ))M TESTENV_REGIOND_PAUSE=0.1 TESTENV_RACKD_PAUSE=0.1 \
  bash "$testenv" up "$env" --rows 2000 >"$base/testenv.log" 2>&1 || { tail "$base/testenv.log" >&2; exit 1; }
store="$env/root/var/lib/maas/image-storage"
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$env/pgsock" -U postgres -d maasdb "$@"; }
psql -c "INSERT INTO maasserver_bootresource (id, created, updated, rtype, name, architecture, extra, rolling, base_image) VALUES
  (1, now(), now(), 0, 'ubuntu/noble', 'amd64/generic', '{}', false, ''), (2, now(), now(), 2, 'custom/mine', 'amd64/generic', '{}', false, 'ubuntu/noble');
  INSERT INTO maasserver_bootresourceset (id, created, updated, version, label, resource_id) VALUES
  (1, now(), now(), '20250101', 'stable', 1), (2, now(), now(), '20250101', 'uploaded', 2);"
add() {  # SET MIB NAME: a random file in the store, named by its sha256, and its row
  head -c "$2M" /dev/urandom >"$store/incoming"
  local sha; sha=$(sha256sum "$store/incoming" | cut -c1-64)
  mv "$store/incoming" "$store/$sha"
  psql -c "INSERT INTO maasserver_bootresourcefile (created, updated, filename, filetype, extra, resource_set_id, sha256, size)
           VALUES (now(), now(), '$3', 'squashfs', '{}', $1, '$sha', $(( $2 * 1048576 )))"
}
left=$synced i=0
while [ "$left" -gt 0 ]; do n=$(( left < 512 ? left : 512 )); add 1 "$n" "synced-$i.squashfs"; left=$(( left - n )); i=$(( i + 1 )); done
add 2 $(( (uploaded + 1) / 2 )) root-a.tgz; add 2 $(( uploaded / 2 > 0 ? uploaded / 2 : 1 )) root-b.tgz
sync

echo "| images | archive | backup | restore (same host) |"
echo "| --- | --- | --- | --- |"
for mode in uploaded all; do
  cfg="$base/config-$mode.yaml"
  { cat "$env/config.yaml"; echo "images: $mode"; } >"$cfg"
  PATH="$env/bin:$PATH" FAKE_SYSTEMCTL_DIR="$env/svc" MSB_TEST_CGROUP_CONTROLLERS="$env/no-cgroup2" \
    "$bin" --json --config "$cfg" >"$base/backup-$mode.json" 2>"$base/backup-$mode.err" || { cat "$base/backup-$mode.err" >&2; exit 1; }
  archive=$(jq -r .archive "$base/backup-$mode.json")
  PATH="$env/bin:$PATH" FAKE_SYSTEMCTL_DIR="$env/svc" MSB_TEST_CGROUP_CONTROLLERS="$env/no-cgroup2" \
    "$bin" restore "$archive" --yes --json --config "$cfg" >"$base/restore-$mode.json" 2>"$base/restore-$mode.err" || { cat "$base/restore-$mode.err" >&2; exit 1; }
  # The restore's aside folders (each holds what the archive brought twice) go before the next run.
  rm -rf "$env/root/var/lib/maas/.maas-snapshot-backup/pre-restore-"* "$env/root/etc/maas.pre-restore-"*
  awk -v m="$mode" -v s="$(jq .size_bytes "$base/backup-$mode.json")" -v b="$(jq .duration_ms "$base/backup-$mode.json")" \
      -v r="$(jq .duration_ms "$base/restore-$mode.json")" \
      'BEGIN { printf "| %s | %.1f MiB | %.1f s | %.1f s |\n", m, s / 1048576, b / 1000, r / 1000 }'
  rm -f "$archive" "$archive.manifest.json"
done

echo
echo "archive step alone on the image store ($(( synced + uploaded )) MiB of incompressible data, level 6, page cache warm):"
cd "$env/root"
t0=$EPOCHREALTIME
tar -cf - var/lib/maas/image-storage | pigz -6 >"$base/pigz.tgz"; sync "$base/pigz.tgz"
t1=$EPOCHREALTIME
"$abin" "$base/msb.tgz" "$store=var/lib/maas/image-storage" >"$base/abin.out"
t2=$EPOCHREALTIME
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n=$(( synced + uploaded )) -v p="$(stat -c %s "$base/pigz.tgz")" -v m="$(stat -c %s "$base/msb.tgz")" 'BEGIN {
  printf "  tar | pigz -6:        %.1f s, %.0f MiB/s, %.1f MiB\n", b - a, n / (b - a), p / 1048576
  printf "  msb-bench-archive:    %.1f s, %.0f MiB/s, %.1f MiB (stored deflate blocks)\n", c - b, n / (c - b), m / 1048576 }'
cat "$base/abin.out"
