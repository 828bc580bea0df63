#!/bin/bash
# The stand-in MAAS daemon of every test (tests only): it keeps bumping one counter, in row SERVICE
# of table msb_counter (service text PRIMARY KEY, n bigint) and in a file, so that a backup taken
# while it runs shows whether database and files were frozen at the same instant. On SIGTERM it
# finishes the current step, lets psql commit what it was sent and exits: once it is stopped, the
# table and the file hold the same number.
#
#   stand-in-maasd.sh SERVICE
#
# Used by Tests/Fixtures/testenv.sh (the demo and the host integration tests, run by the fake
# systemctl), Tests/System/lib.sh (systemd units in the test VM) and
# Tests/System/fake-maas/build-fake-maas.sh (the daemon of the stand-in maas-region-controller .deb).
# Environment:
#   MSB_FAKE_INTERVAL   seconds between steps (default 0.005)
#   MSB_FAKE_FILE       the counter file (default /var/lib/maas/SERVICE.counter); written through a
#                       temporary (NAME.new.counter, else FILE.tmp) and a rename when MSB_FAKE_ATOMIC=1
#   MSB_FAKE_DATABASE   the database (default maasdb); "none": the file only (no psql)
#   MSB_FAKE_PSQL       the psql to run (default psql); PGHOST, PGUSER... as libpq reads them
#   MSB_FAKE_SYNC=1     each UPDATE is committed (psql answered) before the file is written (by a
#                       rename), so a frozen instant shows the file equal to the database or one behind it
#   RUNTIME_DIRECTORY   (systemd's RuntimeDirectory=) where the pause FIFO goes; else a private
#                       temporary folder
set -u
svc=${1:?usage: stand-in-maasd.sh SERVICE}
file=${MSB_FAKE_FILE:-/var/lib/maas/$svc.counter}
interval=${MSB_FAKE_INTERVAL:-0.005}
database=${MSB_FAKE_DATABASE:-maasdb}
atomic=${MSB_FAKE_ATOMIC:-0}
sync=${MSB_FAKE_SYNC:-0}
# Committed, then written whole: a freeze can land between the truncation and the write of an
# in-place rewrite, and the snapshot then holds an empty file, as after a power cut.
((sync)) && atomic=1
# The temporary keeps the .counter suffix, which the tree comparisons leave out: a freeze between
# the write and the rename archives it.
if [[ $file == *.counter ]]; then tmp=${file%.counter}.new.counter; else tmp=$file.tmp; fi
stop=0
trap 'stop=1' TERM INT
n=$(cat "$file" 2>/dev/null || true)
[[ $n =~ ^[0-9]+$ ]] || n=0

# The pause between steps: a read with a timeout on a FIFO nobody writes to (no fork, and a
# SIGTERM is seen at once).
fifo_dir=${RUNTIME_DIRECTORY:-}
if [[ -z $fifo_dir ]]; then
  fifo_dir=$(mktemp -d "${TMPDIR:-/tmp}/stand-in-maasd.XXXXXX") || { echo "cannot make a temporary folder" >&2; exit 1; }
  made_dir=1
fi
fifo=$fifo_dir/pause.$$
{ mkfifo -m 0600 "$fifo" && exec 4<>"$fifo"; } || { echo "cannot make $fifo" >&2; exit 1; }
rm -f "$fifo"
[[ -n ${made_dir:-} ]] && rmdir "$fifo_dir"

psql_pid=
if [[ $database != none ]]; then
  # One psql for the daemon's life, fed through a pipe (and, with MSB_FAKE_SYNC, read back).
  if ((sync)); then
    coproc PG { exec "${MSB_FAKE_PSQL:-psql}" -X -qAt -v ON_ERROR_STOP=1 -d "$database" 2>&1; }
    psql_pid=$PG_PID
    exec 3>&"${PG[1]}" 5<&"${PG[0]}"
    # Only fds 3 and 5 stay open: closing 3 must reach psql as EOF when the service stops.
    eval "exec ${PG[1]}>&- ${PG[0]}<&-"
  else
    exec 3> >(exec "${MSB_FAKE_PSQL:-psql}" -X -q -v ON_ERROR_STOP=1 -d "$database")
    psql_pid=$!
  fi
  echo "INSERT INTO msb_counter VALUES ('$svc', $n) ON CONFLICT (service) DO UPDATE SET n = EXCLUDED.n;" >&3
fi
while ((!stop)); do
  n=$((n + 1))
  if [[ -n $psql_pid ]]; then
    # A write into a full pipe can be interrupted by SIGTERM; <= PIPE_BUF bytes go whole or not at all.
    until echo "UPDATE msb_counter SET n = $n WHERE service = '$svc';" >&3 2>/dev/null; do
      kill -0 "$psql_pid" 2>/dev/null || { echo "psql died" >&2; exit 1; }
    done
    if ((sync)); then
      # Committed before the file is written: wait for psql to answer the query after the UPDATE.
      echo "SELECT 'ok-$n';" >&3
      until read -r -u 5 line && [[ $line == "ok-$n" ]]; do
        kill -0 "$psql_pid" 2>/dev/null || { echo "psql died" >&2; exit 1; }
      done
    fi
  fi
  if ((atomic)); then
    echo "$n" >"$tmp" && mv -f "$tmp" "$file"
  else
    echo "$n" >"$file"
  fi
  read -r -t "$interval" -u 4 _ || true
done
if [[ -n $psql_pid ]]; then
  exec 3>&-
  while kill -0 "$psql_pid" 2>/dev/null; do wait "$psql_pid"; done
fi
echo "$svc stopped at $n"
