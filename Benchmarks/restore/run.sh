#!/usr/bin/env bash
# Restore downtime benchmark (issue 25): for each size, a region like the host tests' (PostgreSQL 15
# with the real MAAS 3.4.0 schema and ROWS generated event rows, /var/lib/maas on Btrfs, stand-in
# daemons), one backup, then `restore` of it: MAAS's downtime (stop to started, as the restore
# reports it) and the wall time; then, on the same archive, the documented manual restore (stop,
# `psql -f dump.sql postgres` as the superuser, `tar -xzf` of the folders, start), whose downtime is
# its whole run. Peak RSS of the tool from /usr/bin/time. The load step alone (`load_ms`) with the
# default database.load_jobs and with 1, against the manual procedure's `psql -f` (the roles part
# included in all three). Figures only; nothing is checked.
#
# Usage (root): Benchmarks/restore/run.sh [ROWS...]   (default 20000 200000: about 60 and 600 MiB of dump)
#   BENCH_FILES_MIB: MiB of incompressible files added to /var/lib/maas (default 256), which the
#     restore extracts while MAAS runs and the manual procedure with MAAS stopped
#   MSB_BINARY: the tool (default .build/debug/maas-snapshot-backup, built when missing)
#   BENCH_TMPDIR: where the environments go (default $TMPDIR or /tmp)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
testenv="$repo/Tests/Fixtures/testenv.sh"
pgbin=/usr/lib/postgresql/15/bin
[ "$(id -u)" = 0 ] || { echo "restore/run.sh: run as root (loop devices, mounts, PostgreSQL as postgres)" >&2; exit 77; }
command -v jq >/dev/null && [ -x /usr/bin/time ] || { echo "restore/run.sh: needs jq and /usr/bin/time (apt-get install jq time)" >&2; exit 69; }
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(20000 200000)
files_mib=${BENCH_FILES_MIB:-256}
[[ $files_mib =~ ^[0-9]+$ ]] || { echo "restore/run.sh: BENCH_FILES_MIB must be a number of MiB, not '$files_mib'" >&2; exit 64; }
for n in "${sizes[@]}"; do [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "restore/run.sh: ROWS must be a count, not '$n'" >&2; exit 64; }; done
bin=${MSB_BINARY:-$repo/.build/debug/maas-snapshot-backup}
[ -x "$bin" ] || (cd "$repo" && swift build --product maas-snapshot-backup >/dev/null)

base=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/msb-bench-restore.XXXXXX")
chmod 755 "$base"
env=
trap '[ -z "$env" ] || bash "$testenv" down "$env" >/dev/null 2>&1 || true; rm -rf "$base"' EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
jobs_default=$(( $(nproc) < 4 ? $(nproc) : 4 ))
printf '%-8s %10s %10s %14s %12s %14s %12s %12s %12s %12s\n' rows dump_MiB files_MiB restore_down_s restore_wall_s manual_down_s peak_RSS_MiB \
  "load_j${jobs_default}_s" load_j1_s psql_f_s
for rows in "${sizes[@]}"; do
  env="$base/env-$rows"
  # Room for the files four times over: live, the backup's snapshot, the staged copy, the one kept aside.
  TESTENV_BTRFS_SIZE=$(( rows / 100 + 1024 + 4 * files_mib ))M bash "$testenv" up "$env" --rows "$rows" >"$base/testenv.log" 2>&1 || { tail "$base/testenv.log" >&2; exit 1; }
  ((files_mib == 0)) || head -c "${files_mib}M" /dev/urandom >"$env/root/var/lib/maas/bench-files.bin"
  orig_path=$PATH
  run=(env PATH="$env/bin:$orig_path" FAKE_SYSTEMCTL_DIR="$env/svc")
  "${run[@]}" "$bin" --config "$env/config.yaml" --reason bench >"$base/backup.log" 2>&1 || { tail "$base/backup.log" >&2; exit 1; }
  archive=$(ls "$env/backups"/*.tar.gz | tail -n1)
  dump_mib=$(tar -xOzf "$archive" dump.sql | wc -c | awk '{ printf "%.0f", $1 / 1048576 }')
  "${run[@]}" /usr/bin/time -f '%M' -o "$base/rss" "$bin" restore --config "$env/config.yaml" "$archive" --yes --json >"$base/restore.json" 2>"$base/restore.log" \
    || { tail "$base/restore.log" >&2; exit 1; }
  down=$(jq -r '.downtime_ms / 1000 | . * 10 | round / 10' "$base/restore.json")
  wall=$(jq -r '.duration_ms / 1000 | . * 10 | round / 10' "$base/restore.json")
  rss=$(awk '{ printf "%.0f", $1 / 1024 }' "$base/rss")
  load=$(jq -r '.load_ms / 1000 | . * 10 | round / 10' "$base/restore.json")
  # The same restore with one load session (database.load_jobs: 1), for the load step alone.
  sed 's/^  name: maasdb$/  name: maasdb\n  load_jobs: 1/' "$env/config.yaml" >"$env/config-j1.yaml"
  "${run[@]}" "$bin" restore --config "$env/config-j1.yaml" "$archive" --yes --json >"$base/restore-j1.json" 2>"$base/restore-j1.log" \
    || { tail "$base/restore-j1.log" >&2; exit 1; }
  load1=$(jq -r '.load_ms / 1000 | . * 10 | round / 10' "$base/restore-j1.json")
  # The documented manual restore of the same archive, its dump taken out first (not timed).
  mkdir -p "$base/manual"; tar -xzf "$archive" -C "$base/manual" dump.sql
  chmod 755 "$base/manual"; chmod 644 "$base/manual/dump.sql"
  t0=$(now)
  "${run[@]}" systemctl stop maas-regiond maas-rackd
  p0=$(now)
  "$pgbin/psql" -X -q -h "$env/pgsock" -U postgres -d postgres -f "$base/manual/dump.sql" >/dev/null 2>"$base/manual.log" || true
  p1=$(now)
  tar -xzpf "$archive" -C "$env/root" etc/maas var/lib/maas
  "${run[@]}" systemctl start maas-regiond maas-rackd
  t1=$(now)
  printf '%-8s %10s %10s %14s %12s %14s %12s %12s %12s %12s\n' "$rows" "$dump_mib" "$files_mib" "$down" "$wall" "$(secs "$t0" "$t1")" "$rss" \
    "$load" "$load1" "$(secs "$p0" "$p1")"
  rm -rf "$base/manual"
  bash "$testenv" down "$env" >/dev/null 2>&1 || true
  env=
done
