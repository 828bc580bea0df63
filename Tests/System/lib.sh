# Helpers for the VM scenarios (Tests/System/scenarios/*.sh). Sourced, inside the guest, as root:
#   source "$MSB_LIB"
# The runner exports MSB_SCENARIO, MSB_RESULTS (folder brought back to the host), MSB_VG (this
# scenario's volume group name), MSB_DATA_DISK (this scenario's own empty disk), MSB_FIXTURES.
# Everything a helper sets up is undone, last first, when the scenario exits (msb_defer), so the
# next scenario of the same boot finds the system as it was.
set -euo pipefail

msb_log() { printf '[%s] %s\n' "$(date +%T.%3N)" "$*"; }
msb_fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
msb_skip() { printf 'skipped: %s\n' "$*"; exit 77; }
# One line the host prints next to the scenario's result (timings, sizes).
msb_summary() { printf '%s\n' "$*" >>"$MSB_RESULTS/summary"; }
msb_assert_eq() { # EXPECTED ACTUAL WHAT
  [[ "$1" == "$2" ]] || msb_fail "$3: expected '$1', got '$2'"
  msb_log "ok: $3 = $2"
}

# --- cleanup stack -------------------------------------------------------------------------------
_msb_cleanups=()
msb_defer() { _msb_cleanups+=("$*"); }
_msb_cleanup() {
  local rc=$? k
  set +e
  for ((k = ${#_msb_cleanups[@]} - 1; k >= 0; k--)); do
    eval "${_msb_cleanups[k]}" >/dev/null 2>&1 || msb_log "cleanup failed: ${_msb_cleanups[k]}"
  done
  exit "$rc"
}
trap _msb_cleanup EXIT

msb_settle() { udevadm settle --timeout=60 || true; }

# Waits until a unit is active (systemctl is slow under emulation: seconds per call).
msb_wait_active() { # UNIT [SECONDS]
  local unit=$1 limit=${2:-120} t=0
  until systemctl is-active --quiet "$unit"; do
    ((t++ < limit)) || { systemctl status --no-pager "$unit" || true; msb_fail "$unit is not active after ${limit}s"; }
    sleep 1
  done
}

# --- disks and LVM -------------------------------------------------------------------------------
# Splits this scenario's data disk into GPT partitions of the given sizes ("rest" = what is left)
# and sets MSB_PARTS to their device paths, e.g. `msb_partition 1G rest`.
MSB_PARTS=()
msb_partition() {
  local disk=$MSB_DATA_DISK i=1 script="label: gpt"$'\n'
  for size in "$@"; do
    if [[ $size == rest ]]; then script+=","$'\n'; else script+=",$size"$'\n'; fi
  done
  sfdisk --quiet --wipe always "$disk" <<<"$script"
  msb_settle
  MSB_PARTS=()
  for size in "$@"; do
    local p=$disk-part$i
    for _ in $(seq 20); do [[ -b $p ]] && break; sleep 0.5; done
    [[ -b $p ]] || msb_fail "partition $p did not appear"
    MSB_PARTS+=("$(readlink -f "$p")")
    i=$((i + 1))
  done
}

# Makes volume group $MSB_VG on DEVICE (default: the whole data disk).
msb_make_vg() { # [DEVICE]
  local dev=${1:-$MSB_DATA_DISK}
  msb_settle
  pvcreate -ff -y -q "$dev" >/dev/null
  vgcreate -q "$MSB_VG" "$dev" >/dev/null
  msb_defer "vgremove -ff -y $MSB_VG; pvremove -ff -y $dev"
  msb_log "volume group $MSB_VG on $dev ($(vgs --noheadings -o vg_size "$MSB_VG" | tr -d ' '))"
}

# Makes a filesystem of type FSTYPE on DEVICE and mounts it at MOUNTPOINT (unmounted at exit).
msb_mkfs_mount() { # DEVICE FSTYPE MOUNTPOINT
  local dev=$1 fs=$2 mnt=$3
  case $fs in
    ext4) mkfs.ext4 -q -F "$dev" ;;
    xfs) mkfs.xfs -q -f "$dev" ;;
    btrfs) mkfs.btrfs -q -f "$dev" ;;
    *) msb_fail "unknown filesystem $fs" ;;
  esac
  mkdir -p "$mnt"
  mount -t "$fs" "$dev" "$mnt"
  msb_defer "umount -l $mnt"
}

# A classic LV: msb_make_lv NAME SIZE [FSTYPE MOUNTPOINT]
msb_make_lv() {
  lvcreate -q -y -W y -n "$1" -L "$2" "$MSB_VG" >/dev/null
  msb_defer "lvremove -f $MSB_VG/$1"
  msb_settle
  [[ $# -lt 4 ]] || msb_mkfs_mount "/dev/$MSB_VG/$1" "$3" "$4"
}

# A thin pool: msb_make_thinpool POOL SIZE
msb_make_thinpool() {
  lvcreate -q -y --type thin-pool -n "$1" -L "$2" "$MSB_VG" >/dev/null
  msb_defer "lvremove -f $MSB_VG/$1"
}

# A thin LV in POOL: msb_make_thinlv NAME VIRTUALSIZE POOL [FSTYPE MOUNTPOINT]
msb_make_thinlv() {
  lvcreate -q -y -W y -n "$1" -V "$2" --thinpool "$3" "$MSB_VG" >/dev/null
  msb_defer "lvremove -f $MSB_VG/$1"
  msb_settle
  [[ $# -lt 5 ]] || msb_mkfs_mount "/dev/$MSB_VG/$1" "$4" "$5"
}

# Mounts DEVICE (with a filesystem already on it) over PATH, carrying PATH's current contents
# (owners, modes) over; undone at exit (the old contents below reappear).
msb_mount_over() { # DEVICE FSTYPE PATH
  local dev=$1 fs=$2 path=$3 tmp
  tmp=$(mktemp -d /run/msb-over.XXXXXX)
  mount -t "$fs" "$dev" "$tmp"
  if [[ -d $path ]]; then cp -a "$path"/. "$tmp"/; else mkdir -p "$path"; fi
  chown --reference="$path" "$tmp"; chmod --reference="$path" "$tmp"
  umount "$tmp"; rmdir "$tmp"
  mount -t "$fs" "$dev" "$path"
  msb_defer "umount -l $path"
}

# --- PostgreSQL and the MAAS database ------------------------------------------------------------
msb_psql() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"; }
msb_sql() { runuser -u postgres -- psql -X -qAt -v ON_ERROR_STOP=1 -d "${MSB_DB:-maasdb}" -c "$1"; }

msb_pg_up() { msb_wait_active postgresql@15-main.service 180; }

# Moves the PostgreSQL cluster onto DEVICE (filesystem FSTYPE on it already) for this scenario.
msb_pgdata_on() { # DEVICE FSTYPE
  systemctl stop postgresql@15-main.service
  msb_defer "systemctl start postgresql@15-main.service"
  msb_mount_over "$1" "$2" /var/lib/postgresql
  msb_defer "systemctl stop postgresql@15-main.service"
  systemctl start postgresql@15-main.service
  msb_pg_up
}

# (Re)creates database maasdb, loads the MAAS schema VERSION (default 3.4.0) into it when the
# fixture is there, and adds the counter table the stand-in services write to.
msb_load_maasdb() { # [VERSION]
  local version=${1:-3.4.0} f
  f=$MSB_FIXTURES/maas-$version.sql
  msb_pg_up
  msb_psql -c "DROP DATABASE IF EXISTS maasdb" -c "CREATE DATABASE maasdb"
  if [[ -f $f ]]; then
    local t0=$SECONDS
    runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d maasdb -f "$f" >/dev/null
    msb_log "loaded MAAS schema $version in $((SECONDS - t0)) s ($(msb_sql "select count(*) from pg_tables where schemaname not in ('pg_catalog','information_schema')") tables)"
  else
    msb_log "MAAS schema $version not present: empty maasdb"
  fi
  id -u maas >/dev/null 2>&1 || useradd --system --home-dir /var/lib/maas --shell /usr/sbin/nologin maas
  msb_psql -c "DO \$\$ BEGIN CREATE ROLE maas LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$"
  msb_sql "CREATE TABLE msb_counter (service text PRIMARY KEY, n bigint NOT NULL); ALTER TABLE msb_counter OWNER TO maas"
}

# Row counts of every table in maasdb's dump.sql-equivalent view: "schema.table count" lines.
msb_live_row_counts() {
  local t
  for t in $(msb_sql "select quote_ident(schemaname)||'.'||quote_ident(tablename) from pg_tables where schemaname not in ('pg_catalog','information_schema') order by 1"); do
    echo "$t $(msb_sql "select count(*) from $t")"
  done
}

# --- stand-in MAAS services ----------------------------------------------------------------------
# maas-regiond, maas-rackd and maas-dhcpd as real systemd units: each keeps bumping its counter in
# table msb_counter of maasdb and the same number in /var/lib/maas/<service>.counter, every
# MSB_FAKE_INTERVAL seconds (default 0.005). On SIGTERM it finishes the iteration, lets psql commit
# what it was sent and exits, so after `systemctl stop` the table and the files agree.
MSB_FAKE_SERVICES=(maas-regiond maas-rackd maas-dhcpd)
msb_install_fake_maas() {
  id -u maas >/dev/null 2>&1 || useradd --system --home-dir /var/lib/maas --shell /usr/sbin/nologin maas
  install -d -o maas -g maas -m 0755 /var/lib/maas
  cat >/usr/local/sbin/msb-fake-maas-daemon <<'DAEMON'
#!/bin/bash
# Stand-in MAAS daemon: counter in the database and in a file, equal whenever it is stopped.
set -u
svc=$1 file=/var/lib/maas/$1.counter interval=${MSB_FAKE_INTERVAL:-0.005}
stop=0
trap 'stop=1' TERM INT
n=$(cat "$file" 2>/dev/null || echo 0)
exec 3> >(exec psql -X -q -v ON_ERROR_STOP=1 -d maasdb)
psql_pid=$!
fifo=$(mktemp -u /run/msb-fake.XXXXXX); mkfifo "$fifo"; exec 4<>"$fifo"; rm -f "$fifo"
echo "INSERT INTO msb_counter VALUES ('$svc', $n) ON CONFLICT (service) DO UPDATE SET n = EXCLUDED.n;" >&3
while ((!stop)); do
  n=$((n + 1))
  # A write into a full pipe can be interrupted by SIGTERM; <= PIPE_BUF bytes go whole or not at all.
  until echo "UPDATE msb_counter SET n = $n WHERE service = '$svc';" >&3 2>/dev/null; do
    kill -0 "$psql_pid" 2>/dev/null || { echo "psql died" >&2; exit 1; }
  done
  echo "$n" >"$file"
  read -r -t "$interval" -u 4 _ || true
done
exec 3>&-
while kill -0 "$psql_pid" 2>/dev/null; do wait "$psql_pid"; done
echo "$svc stopped at $n"
DAEMON
  chmod 0755 /usr/local/sbin/msb-fake-maas-daemon
  local s
  for s in "${MSB_FAKE_SERVICES[@]}"; do
    cat >/etc/systemd/system/$s.service <<UNIT
[Unit]
Description=stand-in $s for the maas-snapshot-backup system tests
After=postgresql.service
[Service]
User=maas
Environment=MSB_FAKE_INTERVAL=${MSB_FAKE_INTERVAL:-0.005}
ExecStart=/usr/local/sbin/msb-fake-maas-daemon $s
KillMode=mixed
TimeoutStopSec=60
UNIT
  done
  systemctl daemon-reload
  msb_defer "systemctl stop ${MSB_FAKE_SERVICES[*]}; rm -f /etc/systemd/system/maas-*.service; systemctl daemon-reload"
}

msb_start_fake_maas() {
  systemctl start "${MSB_FAKE_SERVICES[@]}"
  local s
  for s in "${MSB_FAKE_SERVICES[@]}"; do msb_wait_active "$s" 60; done
  # Running means counting: wait for the first numbers.
  for s in "${MSB_FAKE_SERVICES[@]}"; do
    for _ in $(seq 100); do [[ -s /var/lib/maas/$s.counter ]] && break; sleep 0.2; done
  done
}

msb_fake_maas_all_active() {
  local s
  for s in "${MSB_FAKE_SERVICES[@]}"; do systemctl is-active --quiet "$s" || return 1; done
}

# With the services stopped: database counter and file counter agree, per service.
msb_check_live_counters() {
  local s db file
  for s in "${MSB_FAKE_SERVICES[@]}"; do
    db=$(msb_sql "select n from msb_counter where service = '$s'")
    file=$(cat "/var/lib/maas/$s.counter")
    msb_assert_eq "$db" "$file" "$s database counter vs file counter (live, stopped)"
  done
}

# --- archive checks ------------------------------------------------------------------------------
# Per-table row counts of a pg_dump/pg_dumpall SQL file, from its COPY blocks (one line per row):
# "database schema.table count" lines (database from the \connect lines, "-" before any).
msb_dump_row_counts() { # DUMP.SQL
  awk '
    /^\\connect / { db = $2; gsub(/"/, "", db); next }
    copying && /^\\\.$/ { print (db == "" ? "-" : db), table, rows; copying = 0; next }
    copying { rows++; next }
    /^COPY .* FROM stdin;$/ { table = $2; rows = 0; copying = 1 }
  ' "$1"
}

# The value a COPY block of msb_counter in DUMP.SQL holds for SERVICE.
msb_dump_counter() { # DUMP.SQL SERVICE
  awk -v svc="$2" '
    /^COPY (public\.)?msb_counter / { copying = 1; next }
    copying && /^\\\.$/ { copying = 0 }
    copying { split($0, f, "\t"); if (f[1] == svc) print f[2] }
  ' "$1"
}
