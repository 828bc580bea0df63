#!/usr/bin/env bash
# Backup benchmark (issue 6): the documented manual MAAS backup (A) against maas-snapshot-backup (B)
# on the same MAAS-like data, for each scale in GiB (default: 0.5 2). Prints figures and the targets
# beside them; it never asserts anything about timings.
#
# Usage (root): Benchmarks/backup/run.sh [SCALES...]          e.g. run.sh 0.5 2 8
#   MSB_BINARY=PATH    use this binary instead of building it (MSB_BINARY_NOTE: what it is, printed)
#                      (swift build -c release --scratch-path .build-bench-backup --product maas-snapshot-backup)
#   MSB_BENCH_ARCHIVE=PATH  the same for msb-bench-archive (Benchmarks/archive: the archive step alone)
#   BENCH_SERVICE_PAUSE=S   seconds the stand-in MAAS services sleep between writes (default 0.1:
#                      10-15% of 2 cores busy, about an idle region; 0.005 is the tests' pace,
#                      which keeps about 1.1 of 2 cores busy). Their load is measured and printed.
#   BENCH_TREE_RUNS=N  rounds of tar | pigz and msb-bench-archive on the tree, alternating (default 3;
#                      medians are compared)
#   BENCH_TMPDIR=DIR   where the environments go (default $TMPDIR or /tmp); needs about 3x the
#                      largest scale free
#
# Per scale: Tests/Fixtures/testenv.sh builds PostgreSQL 15 with the MAAS 3.4.0 schema and var/lib/maas on
# a Btrfs loop filesystem (TESTENV_BTRFS_SIZE made big enough), then the data grows to the scale:
#   - half in the database (pg_database_size): 1/4 of it large objects standing in for boot images
#     (32 MiB each of random bytes, which pg_dump writes as hex), the rest maasserver_event rows with
#     8 KiB descriptions (slices of a random hex pool: pglz leaves them alone, gzip halves them);
#   - half as 64 MiB files in var/lib/maas/image-storage (gen-files.pl: 64 KiB runs of random bytes
#     and word salad, the mix of Benchmarks/compress).
# Then, on that data in the same run:
#   (A) stop maas-regiond maas-rackd; pg_dumpall -c > dump.sql; tar -cvpzf backup.tgz etc/maas
#       var/lib/maas dump.sql (from the root, boot-resources left out); start them; the total also
#       syncs backup.tgz (B fsyncs its archive);
#   (B) maas-snapshot-backup --config DIR/config.yaml --json under /usr/bin/time -v; downtime_ms,
#       duration_ms and window from its JSON; its archive phase watched from outside by sample.pl;
#   then, on the same tree (var/lib/maas, boot-resources left out) under the same conditions (the
#   services running, nothing else): tar -czf, tar -cf - | pigz, and B's archive step alone
#   (msb-bench-archive: the backup's own ArchiveBuilder, without snapshot or pg_dump beside it).
#   (C) with restic installed: B's archive copied into a local-path restic repository (`copy`:
#       throughput of its tar), then a second backup of the same region with copy: after-backup
#       and the repository's growth (restic stats --mode raw-data) next to the first copy.
# The page cache is warm for all of them (the data was just written); the load average is printed
# before and after each scale because the timings depend on it.
# Everything is removed at the end and on failure (testenv.sh down, then the work folder).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
testenv="$repo/Tests/Fixtures/testenv.sh"
pgbin=/usr/lib/postgresql/15/bin
GiB=1073741824 MiB=1048576

[ "$(id -u)" = 0 ] || { echo "run.sh: run as root (loop devices, mounts, PostgreSQL as postgres)" >&2; exit 77; }
[ -n "${EPOCHREALTIME:-}" ] || { echo "run.sh: needs bash 5 (EPOCHREALTIME)" >&2; exit 69; }
scales=("$@")
[ ${#scales[@]} -gt 0 ] || scales=(0.5 2)
for s in "${scales[@]}"; do
  [[ $s =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v s="$s" 'BEGIN { exit !(s >= 0.1) }' ||
    { echo "run.sh: a scale is a size in GiB of at least 0.1, not '$s'" >&2; exit 64; }
done

# ---- cleanup, at the end and on failure ----
base=""; cur_env=""; bpid=""; spid=""
orig_path=$PATH
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$spid" ] && kill "$spid" 2>/dev/null
  if [ -n "$bpid" ]; then
    # $bpid is /usr/bin/time: stop the program it runs (which starts the services again), then wait.
    for c in $(cat /proc/"$bpid"/task/*/children 2>/dev/null); do kill "$c" 2>/dev/null; done
    wait "$bpid" 2>/dev/null
  fi
  if [ -n "$cur_env" ]; then
    bash "$testenv" down "$cur_env" >/dev/null 2>&1 || echo "run.sh: warning: testenv.sh down $cur_env failed" >&2
  fi
  if [ -n "$base" ]; then
    if grep -q " $base/" /proc/self/mounts; then
      echo "run.sh: warning: something is still mounted under $base; left in place" >&2
    else
      rm -rf "$base"
    fi
  fi
  [ $rc -eq 0 ] || echo "run.sh: failed (exit $rc); cleaned up" >&2
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- tools ----
install_pkg() {
  echo "run.sh: installing $1"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null; }
}
[ -x /usr/bin/time ] || install_pkg time
command -v pigz >/dev/null || install_pkg pigz
command -v jq >/dev/null || install_pkg jq
[ -x "$pgbin/pg_dumpall" ] || { echo "run.sh: PostgreSQL 15 is missing ($pgbin); run scripts/install-deps.sh" >&2; exit 69; }

# ---- the binaries ----
build_note="given (MSB_BINARY)"
build_product() {  # NAME: a release build into .build-bench-backup; prints nothing on success
  (cd "$repo" && swift build -c release --scratch-path .build-bench-backup --product "$1") \
    >"${TMPDIR:-/tmp}/msb-bench-backup-build.log" 2>&1 ||
    { tail -30 "${TMPDIR:-/tmp}/msb-bench-backup-build.log" >&2; exit 1; }
}
if [ -n "${MSB_BINARY:-}" ]; then
  bin=$MSB_BINARY
else
  t=$EPOCHREALTIME
  echo "building maas-snapshot-backup (release, .build-bench-backup) ..."
  build_product maas-snapshot-backup
  bin="$repo/.build-bench-backup/release/maas-snapshot-backup"
  build_note=$(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN { printf "release build %.0f s (not counted)", b - a }')
fi
[ -x "$bin" ] || { echo "run.sh: no binary at $bin" >&2; exit 69; }
if [ -n "${MSB_BENCH_ARCHIVE:-}" ]; then
  abin=$MSB_BENCH_ARCHIVE
else
  echo "building msb-bench-archive (release, .build-bench-backup) ..."
  build_product msb-bench-archive
  abin="$repo/.build-bench-backup/release/msb-bench-archive"
fi
[ -x "$abin" ] || { echo "run.sh: no msb-bench-archive at $abin" >&2; exit 69; }
pause=${BENCH_SERVICE_PAUSE:-0.1}
runs=${BENCH_TREE_RUNS:-3}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: BENCH_TREE_RUNS is a count of at least 1, not '$runs'" >&2; exit 64; }
[[ $pause =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "run.sh: BENCH_SERVICE_PAUSE is seconds, such as 0.1, not '$pause'" >&2; exit 64; }

base=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/msb-bench-backup.XXXXXX")
chmod 755 "$base"

# ---- helpers ----
load() { cut -d' ' -f1-3 /proc/loadavg; }
# busy_share SECONDS: the share of all CPUs busy (not idle, not iowait) over SECONDS, in percent.
busy_share() {
  local b1 i1 b2 i2
  read -r b1 i1 < <(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
  sleep "$1"
  read -r b2 i2 < <(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
  calc "%.0f" "100 * (b2 - b1) / ((b2 - b1) + (i2 - i1))" b1="$b1" b2="$b2" i1="$i1" i2="$i2"
}
# figure NAME FILE: the value of NAME=VALUE in msb-bench-archive's line of figures.
figure() { sed -n "s/.*\\<$1=\\([0-9.]*\\).*/\\1/p" "$2"; }
# median NUMBER...: the middle one (the mean of the middle two for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# calc FORMAT EXPR [name=value ...]: awk arithmetic on named values.
calc() { local fmt=$1 expr=$2; shift 2; local args=(); for a in "$@"; do args+=(-v "$a"); done; awk "${args[@]}" "BEGIN { printf \"$fmt\", ($expr) }"; }
psql_env() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$1/pgsock" -U postgres -d maasdb "${@:2}"; }
# The wall, user and system seconds /usr/bin/time -f '%e %U %S' wrote (its last line: a command
# that exited non-zero adds a line before it).
times_of() { tail -1 "$1"; }
fsize() { stat -c %s "$1"; }

# Grows maasdb to TARGET bytes (pg_database_size): a quarter of it as 32 MiB large objects, then
# maasserver_event rows with 8 KiB descriptions, 8 MiB a transaction, until the size is reached.
grow_db() {
  local env=$1 target=$2
  local lo_bytes; lo_bytes=$(calc "%.0f" "t / 4" t="$target")
  local insert
  if [ "$(psql_env "$env" -tA -c "SELECT to_regclass('maasserver_eventtype') IS NOT NULL")" = t ]; then
    insert="INSERT INTO maasserver_event (created, updated, action, description, type_id, node_hostname, username, user_agent, endpoint)
      SELECT now(), now(), 'script_result', convert_from(substring(pool FROM 1 + (random() * (plen - 8193))::int FOR 8192), 'UTF8'),
             etype + g % 10, 'node-' || g % 97, 'admin', 'bench', 0
      FROM generate_series(1, 1024) g;"
  else
    insert="INSERT INTO maasserver_event (description)
      SELECT convert_from(substring(pool FROM 1 + (random() * (plen - 8193))::int FOR 8192), 'UTF8') FROM generate_series(1, 1024) g;"
  fi
  psql_env "$env" <<SQL
DO \$\$
DECLARE
  pool bytea;
  plen int;
  rpool bytea;
  rlen int;
  etype int;
  lo_size constant int := 33554432;
BEGIN
  -- About 4 MiB of random hex words and line breaks; rows and large objects are random slices of it.
  SELECT convert_to(string_agg(md5(g::text || random()::text) || CASE WHEN g % 3 = 0 THEN E'\n' ELSE ' ' END, ''), 'UTF8')
    INTO pool FROM generate_series(1, 127100) g;
  plen := length(pool);
  -- 4 MiB of random bytes: the large objects stand in for boot images (incompressible; hex in the dump).
  SELECT decode(string_agg(md5(g::text || random()::text), ''), 'hex') INTO rpool FROM generate_series(1, 262144) g;
  rlen := length(rpool);
  IF to_regclass('maasserver_eventtype') IS NOT NULL THEN
    EXECUTE 'SELECT min(id) FROM maasserver_eventtype' INTO etype;
  END IF;
  FOR i IN 1 .. greatest(1, round($lo_bytes::numeric / lo_size)::int) LOOP
    PERFORM lo_from_bytea(0, (SELECT string_agg(substring(rpool FROM 1 + (random() * (rlen - 65537))::int FOR 65536), ''::bytea)
                              FROM generate_series(1, lo_size / 65536)));
    COMMIT;
  END LOOP;
  WHILE pg_database_size(current_database()) < $target LOOP
    $insert
    COMMIT;
  END LOOP;
END
\$\$;
CHECKPOINT;
SQL
}

# Bytes of the files B and A archive: etc/maas and var/lib/maas without boot-resources.
tree_bytes() {
  du -sb --exclude=boot-resources --exclude=.maas-snapshot-backup "$1/root/var/lib/maas" "$1/root/etc/maas" |
    awk '{ s += $1 } END { printf "%.0f\n", s }'
}

summary_rows=()

run_scale() {
  local scale=$1
  local half; half=$(calc "%.0f" "s * g / 2" s="$scale" g=$GiB)
  local btrfs_mb; btrfs_mb=$(calc "%.0f" "h / m + (h / m / 4 > 256 ? h / m / 4 : 256) + 256" h="$half" m=$MiB)
  local env="$base/scale-$scale" w="$base/work-$scale"
  mkdir -p "$w"
  local load_before; load_before=$(load)
  echo
  echo "== scale $scale GiB ($(date -u +%FT%TZ); load average $load_before) =="
  local tb=$EPOCHREALTIME
  cur_env=$env
  TESTENV_BTRFS_SIZE=${btrfs_mb}M TESTENV_REGIOND_PAUSE=$pause TESTENV_RACKD_PAUSE=$pause bash "$testenv" up "$env" --rows 2000 >"$w/testenv.log" 2>&1 ||
    { cat "$w/testenv.log" >&2; return 1; }
  local run=(env PATH="$env/bin:$orig_path" FAKE_SYSTEMCTL_DIR="$env/svc")
  local m="$env/root/var/lib/maas"

  # ---- the data ----
  grow_db "$env" "$half"
  local before_files; before_files=$(tree_bytes "$env")
  perl "$here/gen-files.pl" "$m/image-storage" $((half - before_files > 0 ? half - before_files : 0)) $((64 * MiB)) >/dev/null
  sync -f "$m"; sync -f "$env/pg"
  local db_bytes lo_bytes ev_bytes tree nfiles
  db_bytes=$(psql_env "$env" -tA -c "SELECT pg_database_size('maasdb')")
  lo_bytes=$(psql_env "$env" -tA -c "SELECT pg_total_relation_size('pg_largeobject')")
  ev_bytes=$(psql_env "$env" -tA -c "SELECT pg_total_relation_size('maasserver_event')")
  tree=$(tree_bytes "$env")
  nfiles=$(find "$m" "$env/root/etc/maas" -path "$m/boot-resources" -prune -o -type f -print | wc -l)
  local build_s; build_s=$(calc "%.0f" "b - a" a="$tb" b="$EPOCHREALTIME")
  local svc_busy; svc_busy=$(busy_share 5)
  echo "data: database $(calc "%.2f" "x / g" x="$db_bytes" g=$GiB) GiB (events $(calc "%.2f" "x / g" x="$ev_bytes" g=$GiB), large objects $(calc "%.2f" "x / g" x="$lo_bytes" g=$GiB)); files $(calc "%.2f" "x / g" x="$tree" g=$GiB) GiB in $nfiles files; built in $build_s s; the machine ${svc_busy}% busy with the stand-in services up (a write every $pause s), nothing else running"

  # ---- (A) the documented manual procedure ----
  echo "A: stop, pg_dumpall -c, tar -cvpzf, start ..."
  local a0 a1 a2 a3 a4 a5
  a0=$EPOCHREALTIME
  "${run[@]}" "$env/bin/systemctl" stop maas-regiond maas-rackd
  a1=$EPOCHREALTIME
  /usr/bin/time -f '%e %U %S' -o "$w/a-dump.time" \
    "$pgbin/pg_dumpall" -c -h "$env/pgsock" -U postgres >"$env/root/dump.sql"
  a2=$EPOCHREALTIME
  (cd "$env/root" && /usr/bin/time -f '%e %U %S' -o "$w/a-tar.time" \
    tar -cvpzf "$w/backup.tgz" --exclude=var/lib/maas/boot-resources etc/maas var/lib/maas dump.sql >"$w/a-tar.list")
  a3=$EPOCHREALTIME
  "${run[@]}" "$env/bin/systemctl" start maas-regiond maas-rackd
  a4=$EPOCHREALTIME
  sync "$w/backup.tgz"
  a5=$EPOCHREALTIME
  local a_dump_bytes a_size; a_dump_bytes=$(fsize "$env/root/dump.sql"); a_size=$(fsize "$w/backup.tgz")
  rm -f "$env/root/dump.sql" "$w/backup.tgz"
  local a_down a_total a_stop a_dumpt a_tar a_start
  a_down=$(calc "%.3f" "b - a" a="$a0" b="$a4"); a_total=$(calc "%.3f" "b - a" a="$a0" b="$a5")
  a_stop=$(calc "%.3f" "b - a" a="$a0" b="$a1"); a_dumpt=$(calc "%.3f" "b - a" a="$a1" b="$a2")
  a_tar=$(calc "%.3f" "b - a" a="$a2" b="$a3"); a_start=$(calc "%.3f" "b - a" a="$a3" b="$a4")
  local a_sync; a_sync=$(calc "%.3f" "b - a" a="$a4" b="$a5")
  local a_tar_cpu; a_tar_cpu=$(times_of "$w/a-tar.time" | awk '{ printf "%.1f", $2 + $3 }')
  local a_dump_cpu; a_dump_cpu=$(times_of "$w/a-dump.time" | awk '{ printf "%.1f", $2 + $3 }')

  # ---- (B) maas-snapshot-backup ----
  echo "B: maas-snapshot-backup --json ..."
  local b0 b1 brc=0
  b0=$EPOCHREALTIME
  "${run[@]}" /usr/bin/time -v -o "$w/b.time" "$bin" --config "$env/config.yaml" --json >"$w/b.json" 2>"$w/b.err" &
  bpid=$!
  perl "$here/sample.pl" "$bpid" "$env/backups" 20 >"$w/b.samples" &
  spid=$!
  wait "$bpid" || brc=$?
  bpid=""
  b1=$EPOCHREALTIME
  wait "$spid" || true
  spid=""
  if [ $brc -ne 0 ] || [ "$(jq -r .status "$w/b.json" 2>/dev/null)" != ok ]; then
    echo "B failed (exit $brc):" >&2; cat "$w/b.json" "$w/b.err" >&2; return 1
  fi
  local b_down b_dur b_size b_arch b_dump_bytes b_rss b_cpu b_window
  b_down=$(jq -r '.downtime_ms / 1000' "$w/b.json"); b_dur=$(jq -r '.duration_ms / 1000' "$w/b.json")
  b_size=$(jq -r .size_bytes "$w/b.json"); b_arch=$(jq -r .archive "$w/b.json")
  b_dump_bytes=$(jq -r .dump.size "$b_arch.manifest.json")
  b_window=$(jq -r --arg root "$env/root" \
    '[.window[] | (.step | split(" ")) as $p | "\($p[0]) \($p[1:] | join(" ") | ltrimstr($root)) \(.ms) ms" | sub(" +"; " ")] | join(", ")' "$w/b.json")
  # The window without the services' own stop and start: what the tool itself holds them down for.
  local b_own
  b_own=$(jq -r '(.downtime_ms - ([.window[] | select(.step == "stop_services" or .step == "start_services") | .ms] | add // 0)) / 1000' "$w/b.json")
  b_rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$w/b.time")
  b_cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.1f", s }' "$w/b.time")
  # The outside view of B's run (sample.pl) and the stand-in systemctl's call log.
  local s_partial_first=0 s_partial_last=0 s_tree_first=0 s_tree_last=0 s_dump_first=0 s_dump_last=0 s_samples=0
  # shellcheck disable=SC1090
  . "$w/b.samples"
  local b_stop_call
  b_stop_call=$(awk -v t="$b0" '$1 > t && $2 == "stop" { print $1; exit }' "$env/svc/calls.log")
  # ---- (C) the off-host copy: B's archive into a local-path restic repository, then a second
  # backup of the same region (services still writing) with copy: after-backup, and what it added ----
  local c_line="C (off-host copy): restic is not installed; skipped"
  if command -v restic >/dev/null 2>&1 && command -v jq >/dev/null 2>&1; then
    echo "C: copy to a restic repository, then a second backup with copy: after-backup ..."
    install -d -m 700 "$w/restic"
    head -c 32 /dev/urandom | base64 >"$w/restic/password"
    chmod 600 "$w/restic/password"
    cp "$env/config.yaml" "$w/config-remote.yaml"
    printf 'remote:\n  repository: %s\n  password_file: %s\n  copy: after-backup\n' "$w/restic/repo" "$w/restic/password" >>"$w/config-remote.yaml"
    rstat() { RESTIC_REPOSITORY="$w/restic/repo" RESTIC_PASSWORD_FILE="$w/restic/password" restic --no-cache stats --mode raw-data --json 2>/dev/null | jq -r .total_size; }
    if "${run[@]}" "$bin" remote-init --config "$w/config-remote.yaml" --json >"$w/c0.json" 2>"$w/c.err" &&
       "${run[@]}" "$bin" copy "$b_arch" --config "$w/config-remote.yaml" --json >"$w/c1.json" 2>>"$w/c.err"; then
      local c1_tar c1_s c1_repo c2_tar c2_s c2_repo c2_status
      c1_tar=$(jq -r '[.copied[].uncompressed_bytes] | add' "$w/c1.json"); c1_s=$(jq -r '[.copied[].duration_ms] | add / 1000' "$w/c1.json")
      c1_repo=$(rstat)
      "${run[@]}" "$bin" --config "$w/config-remote.yaml" --json >"$w/c2.json" 2>>"$w/c.err" || true
      c2_status=$(jq -r '.copy.status // ("none: " + (.error // "?"))' "$w/c2.json" 2>/dev/null || echo "none: $(tail -1 "$w/c.err")")
      c2_tar=$(jq -r '[.copy.copied[]?.uncompressed_bytes] | add // 0' "$w/c2.json"); c2_s=$(jq -r '[.copy.copied[]?.duration_ms] | add // 0 | . / 1000' "$w/c2.json")
      c2_repo=$(rstat)
      rm -f "$(jq -r .archive "$w/c2.json")" "$(jq -r .archive "$w/c2.json").manifest.json"
      c_line="C (off-host copy, restic $(restic version | awk '{print $2}'), local-path repository): B's archive as its tar ($(calc "%.2f GiB" "x / g" x="$c1_tar" g=$GiB)) copied in $(calc "%.1f s" x x="$c1_s"), $(calc "%.1f MiB/s" "x / m / t" x="$c1_tar" m=$MiB t="$c1_s"); repository $(calc "%.2f GiB" "x / g" x="$c1_repo" g=$GiB) after it. A second backup of the same region (services writing) with copy: after-backup: copy $c2_status, $(calc "%.2f GiB" "x / g" x="$c2_tar" g=$GiB) of tar in $(calc "%.1f s" x x="$c2_s"), repository growth $(calc "%.1f MiB" "(b - a) / m" a="$c1_repo" b="$c2_repo" m=$MiB) ($(calc "%.2f%%" "100 * (b - a) / a" a="$c1_repo" b="$c2_repo") of the first)."
    else
      c_line="C (off-host copy) failed: $(tail -1 "$w/c.err")"
    fi
  fi
  rm -f "$b_arch" "$b_arch.manifest.json"

  # ---- the same tree: tar -czf once, then tar | pigz and B's archive step alone, taking turns ----
  # Each output is fsynced inside its timing, as B's archive is. This machine's speed drifts by
  # several percent from minute to minute (a shared VM: CPU steal), so the close pair, pigz and
  # msb-bench-archive, run $runs times each, alternating, and their medians are compared.
  echo "tar -czf on var/lib/maas ..."
  (cd "$env/root" && /usr/bin/time -f '%e %U %S' -o "$w/c-gzip.time" bash -c \
    'tar -czf "$1" --warning=no-file-changed --exclude=var/lib/maas/boot-resources var/lib/maas; s=$?
     [ $s -le 1 ] && sync "$1"' _ "$w/tree-gzip.tgz")   # tar's 1: a file changed while read (the stand-ins write)
  local vlm; vlm=$(du -sb --exclude=boot-resources "$m" | cut -f1)
  local g_wall g_u g_s g_cpu g_size
  read -r g_wall g_u g_s < <(times_of "$w/c-gzip.time"); g_cpu=$(calc "%.1f" "u + s" u="$g_u" s="$g_s")
  g_size=$(fsize "$w/tree-gzip.tgz"); rm -f "$w/tree-gzip.tgz"
  local i pw pu ps p_walls=() p_cpus=() x_walls=() x_cpus=() x_rsss=() p_size x_size
  for ((i = 1; i <= runs; i++)); do
    echo "tar | pigz, then msb-bench-archive (B's archive step alone) on var/lib/maas: round $i of $runs ..."
    (cd "$env/root" && /usr/bin/time -f '%e %U %S' -o "$w/c-pigz.time" bash -c \
      'tar -cf - --warning=no-file-changed --exclude=var/lib/maas/boot-resources var/lib/maas | pigz -6 >"$1"
       s=("${PIPESTATUS[@]}"); [ "${s[0]}" -le 1 ] && [ "${s[1]}" -eq 0 ] && sync "$1"' _ "$w/tree-pigz.tgz")
    read -r pw pu ps < <(times_of "$w/c-pigz.time")
    p_walls+=("$pw"); p_cpus+=("$(calc "%.1f" "u + s" u="$pu" s="$ps")")
    p_size=$(fsize "$w/tree-pigz.tgz"); rm -f "$w/tree-pigz.tgz"
    # boot-resources is left out by the default config's exclude; the stand-ins' small files
    # rewritten in place or renamed meanwhile are left out too (a backup reads a frozen snapshot,
    # where a file that shrinks under it is an error, not a warning).
    "$abin" "$w/tree-msb.tgz" "$m=var/lib/maas" --exclude /var/lib/maas/rackd-heartbeat \
      --exclude /var/lib/maas/counter --exclude /var/lib/maas/counter.tmp >"$w/c-msb.out"
    x_walls+=("$(figure wall_s "$w/c-msb.out")"); x_cpus+=("$(figure cpu_s "$w/c-msb.out")")
    x_rsss+=("$(figure rss_mib "$w/c-msb.out")")
    x_size=$(fsize "$w/tree-msb.tgz"); rm -f "$w/tree-msb.tgz"
  done
  local p_wall p_cpu x_wall x_cpu x_rss
  p_wall=$(median "${p_walls[@]}"); p_cpu=$(median "${p_cpus[@]}")
  x_wall=$(median "${x_walls[@]}"); x_cpu=$(median "${x_cpus[@]}"); x_rss=$(printf '%s\n' "${x_rsss[@]}" | sort -g | tail -1)
  local load_after; load_after=$(load)

  # ---- figures ----
  local b_arch_s b_tree_s b_dump_s b_wait_s b_tail_s b_pre_s b_post_s b_gap_s
  b_arch_s=$(calc "%.2f" "b - a" a="$s_partial_first" b="$s_partial_last")
  b_tree_s=$(calc "%.2f" "b - a" a="$s_partial_first" b="$s_tree_last")
  b_dump_s=$(calc "%.2f" "b - a" a="$s_dump_first" b="$s_dump_last")
  b_wait_s=$(calc "%.2f" "d > t ? d - t : 0" d="$s_dump_last" t="$s_tree_last")
  b_tail_s=$(calc "%.2f" "p - (d > t ? d : t)" p="$s_partial_last" d="$s_dump_last" t="$s_tree_last")
  b_pre_s=$(calc "%.2f" "c - a" a="$b0" c="${b_stop_call:-$b0}")
  b_gap_s=$(calc "%.2f" "p - c - d" p="$s_partial_first" c="${b_stop_call:-$b0}" d="$b_down")
  b_post_s=$(calc "%.2f" "e - p" e="$b1" p="$s_partial_last")
  local mibs="x / m / t"
  local thr_a thr_b thr_bt thr_g thr_p thr_x
  thr_a=$(calc "%.1f" "x / m / (t + y)" x=$((tree + a_dump_bytes)) m=$MiB t="$a_tar" y="$a_sync")   # B fsyncs too
  thr_b=$(calc "%.1f" "$mibs" x=$((tree + b_dump_bytes)) m=$MiB t="$b_arch_s")
  thr_bt=$(calc "%.1f" "$mibs" x="$tree" m=$MiB t="$b_tree_s")
  thr_g=$(calc "%.1f" "$mibs" x="$vlm" m=$MiB t="$g_wall")
  thr_p=$(calc "%.1f" "$mibs" x="$vlm" m=$MiB t="$p_wall")
  thr_x=$(calc "%.1f" "$mibs" x="$vlm" m=$MiB t="$x_wall")
  local gib="%.2f GiB"
  echo
  echo "### scale $scale GiB: database $(calc "%.2f" "x / g" x="$db_bytes" g=$GiB) GiB, files $(calc "%.2f" "x / g" x="$tree" g=$GiB) GiB; load average before $load_before, after $load_after"
  echo
  echo "| figure | A: manual (stop, pg_dumpall -c, tar -cvpzf, start) | B: maas-snapshot-backup | B vs A | target |"
  echo "| --- | --- | --- | --- | --- |"
  echo "| downtime | $(calc "%.1f s" "x" x="$a_down") | $(calc "%.3f s" "x" x="$b_down") | $(calc "%.0fx shorter" "a / b" a="$a_down" b="$b_down") | B >= 200x shorter at 2 GiB; flat in size (8 GiB within 1.2x of 0.5 GiB) |"
  echo "| total | $(calc "%.1f s" "x" x="$a_total") | $(calc "%.1f s" "x" x="$b_dur") | $(calc "%.2fx" "b / a" a="$a_total" b="$b_dur") | B no longer than A |"
  echo "| archive size | $(calc "$gib" "x / g" x="$a_size" g=$GiB) | $(calc "$gib" "x / g" x="$b_size" g=$GiB) | $(calc "%.2fx" "b / a" a="$a_size" b="$b_size") | |"
  echo "| dump.sql | $(calc "$gib" "x / g" x="$a_dump_bytes" g=$GiB) (pg_dumpall $(calc "%.1f s" "x" x="$a_dumpt"), $a_dump_cpu s CPU) | $(calc "$gib" "x / g" x="$b_dump_bytes" g=$GiB) (pg_dump ran $(calc "%.1f s" "x" x="$b_dump_s"), concurrent with the tree) | | |"
  echo "| peak RSS | | $b_rss MiB (CPU $b_cpu s incl. pg_dump) | | <= 64 MiB |"
  echo "| archive step: tree + dump.sql in, MiB/s | $thr_a (tar -cvpzf: $(calc "%.1f s" "x" x="$a_tar") and the sync of backup.tgz, $a_tar_cpu s CPU) | $thr_b (.partial written in $b_arch_s s) | $(calc "%.2fx" "b / a" a="$thr_a" b="$thr_b") | >= 1.7x GNU tar+gzip |"
  echo "| archive step alone on the var/lib/maas tree, MiB/s (services up, nothing else; outputs fsynced; medians of $runs) | tar -czf $thr_g; tar \\| pigz $thr_p (runs ${p_walls[*]} s) | $thr_x (msb-bench-archive: runs ${x_walls[*]} s, $x_cpu s CPU, $(calc "$gib" "x / g" x="$x_size" g=$GiB), RSS $x_rss MiB) | $(calc "%.2fx" "b / a" a="$thr_g" b="$thr_x") tar+gzip, $(calc "%.2fx" "b / a" a="$thr_p" b="$thr_x") pigz | >= 1.7x tar+gzip, >= pigz |"
  echo "| var/lib/maas tree, MiB/s | tar -czf $thr_g ($(calc "%.1f s" "x" x="$g_wall"), $g_cpu s CPU, $(calc "$gib" "x / g" x="$g_size" g=$GiB)); tar \\| pigz $thr_p ($(calc "%.1f s" "x" x="$p_wall"), $p_cpu s CPU, $(calc "$gib" "x / g" x="$p_size" g=$GiB)) | $thr_bt (tree files open for $b_tree_s s, pg_dump running beside) | $(calc "%.2fx" "b / a" a="$thr_g" b="$thr_bt") tar+gzip, $(calc "%.2fx" "b / a" a="$thr_p" b="$thr_bt") pigz | >= 1.7x tar+gzip, >= pigz |"
  echo
  echo "A's steps: stop $(calc "%.2f" x x="$a_stop") s, pg_dumpall $(calc "%.1f" x x="$a_dumpt") s, tar $(calc "%.1f" x x="$a_tar") s, start $(calc "%.2f" x x="$a_start") s, sync of backup.tgz $(calc "%.2f" x x="$a_sync") s."
  echo "B's window ($(calc "%.0f" "x * 1000" x="$b_down") ms; $(calc "%.1f" "x * 1000" x="$b_own") ms without the services' own stop and start): $b_window."
  echo "B's run ($(calc "%.1f" x x="$b_dur") s; from outside, $s_samples samples): preflight and connections $b_pre_s s; window $(calc "%.2f" x x="$b_down") s; to the first archive byte $b_gap_s s; tree archived $b_tree_s s with pg_dump running $b_dump_s s beside it; waiting for pg_dump after the tree $b_wait_s s; dump.sql member, manifest, fsync and rename $b_tail_s s; snapshot removal and exit $b_post_s s."
  echo "$c_line"
  summary_rows+=("$scale $a_down $b_down $a_total $b_dur $b_rss $thr_a $thr_b $thr_g $thr_p $thr_bt $thr_x $svc_busy $b_own ${load_before// //}|${load_after// //}")

  bash "$testenv" down "$env" >/dev/null 2>&1
  cur_env=""
  rm -rf "$w"
}

t_all=$EPOCHREALTIME
echo "backup benchmark: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -r); $(date -u +%F)"
if [ -n "${MSB_BINARY:-}" ]; then
  echo "binary: $bin, version $("$bin" --version 2>/dev/null || echo '?') ($build_note${MSB_BINARY_NOTE:+: $MSB_BINARY_NOTE})"
else
  echo "binary: $bin ($build_note) from the tree at commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet HEAD -- Sources Package.swift 2>/dev/null || echo ' with uncommitted changes in Sources')"
fi
echo "msb-bench-archive: $abin"
echo "scales (GiB): ${scales[*]}; stand-in services write every $pause s; load average at start: $(load)"
for s in "${scales[@]}"; do run_scale "$s"; done

echo
echo "### all scales"
echo
echo "| scale | downtime A | downtime B (without the services' stop and start) | A/B | total A | total B | B/A | peak RSS B | archive step in the run, MiB/s: A (tar+gzip) / B | archive step alone on the tree, MiB/s: tar+gzip / pigz / B | B alone vs tar+gzip, pigz | B's tree in the run, MiB/s | busy with services up | load before \\| after |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for r in "${summary_rows[@]}"; do
  read -r sc ad bd at bt rss ta tb tg tp tbt tx sb bo ld <<<"$r"
  echo "| $sc GiB | $(calc "%.1f s" x x="$ad") | $(calc "%.3f s" x x="$bd") ($(calc "%.1f ms" "x * 1000" x="$bo")) | $(calc "%.0fx" "a / b" a="$ad" b="$bd") | $(calc "%.1f s" x x="$at") | $(calc "%.1f s" x x="$bt") | $(calc "%.2f" "b / a" a="$at" b="$bt") | $rss MiB | $ta / $tb ($(calc "%.2fx" "b / a" a="$ta" b="$tb")) | $tg / $tp / $tx | $(calc "%.2fx" "b / a" a="$tg" b="$tx"), $(calc "%.2fx" "b / a" a="$tp" b="$tx") | $tbt | $sb% | ${ld//|/ \\| } |"
done
if [ ${#summary_rows[@]} -ge 2 ]; then
  read -r s1 _ d1 _ _ _ _ _ _ _ _ _ _ o1 _ <<<"${summary_rows[0]}"
  read -r s2 _ d2 _ _ _ _ _ _ _ _ _ _ o2 _ <<<"${summary_rows[${#summary_rows[@]}-1]}"
  echo
  echo "B's downtime at $s2 GiB is $(calc "%.2fx" "b / a" a="$d1" b="$d2") its downtime at $s1 GiB, and $(calc "%.2fx" "b / a" a="$o1" b="$o2") without the stand-in services' own stop and start (target: 8 GiB within 1.2x of 0.5 GiB)."
fi
echo
echo "targets: downtime flat in data size (8 GiB within 1.2x of 0.5 GiB); B's downtime >= 200x shorter than A's at 2 GiB; B's total no longer than A's; archive throughput >= 1.7x GNU tar+gzip and >= pigz; peak RSS <= 64 MiB. Figures only: nothing here is checked."
echo "benchmark wall time: $(calc "%.0f s" "b - a" a="$t_all" b="$EPOCHREALTIME"); load average at the end: $(load)"
