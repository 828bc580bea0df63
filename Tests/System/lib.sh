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
msb_mkfs() { # DEVICE FSTYPE
  case $2 in
    ext4) mkfs.ext4 -q -F "$1" ;;
    xfs) mkfs.xfs -q -f "$1" ;;
    btrfs) mkfs.btrfs -q -f "$1" >/dev/null ;;
    *) msb_fail "unknown filesystem $2" ;;
  esac
}
msb_mkfs_mount() { # DEVICE FSTYPE MOUNTPOINT
  local dev=$1 fs=$2 mnt=$3
  msb_mkfs "$dev" "$fs"
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
msb_mount_over() { # DEVICE FSTYPE PATH [MOUNT_OPTIONS]
  local dev=$1 fs=$2 path=$3 opts=${4:-defaults} tmp
  tmp=$(mktemp -d /run/msb-over.XXXXXX)
  mount -t "$fs" -o "$opts" "$dev" "$tmp"
  if [[ -d $path ]]; then cp -a "$path"/. "$tmp"/; else mkdir -p "$path"; fi
  chown --reference="$path" "$tmp"; chmod --reference="$path" "$tmp"
  umount "$tmp"; rmdir "$tmp"
  mount -t "$fs" -o "$opts" "$dev" "$path"
  msb_defer "umount -l $path"
}

# --- PostgreSQL and the MAAS database ------------------------------------------------------------
msb_psql() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"; }
msb_sql() { runuser -u postgres -- psql -X -qAt -v ON_ERROR_STOP=1 -d "${MSB_DB:-maasdb}" -c "$1"; }

msb_pg_up() { msb_wait_active postgresql@15-main.service 180; }

# Moves the PostgreSQL cluster onto DEVICE (filesystem FSTYPE on it already) for this scenario.
msb_pgdata_on() { # DEVICE FSTYPE [MOUNT_OPTIONS]
  systemctl stop postgresql@15-main.service
  msb_defer "systemctl start postgresql@15-main.service"
  msb_mount_over "$1" "$2" /var/lib/postgresql "${3:-defaults}"
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
# MSB_FAKE_INTERVAL seconds (default 0.05: under TCG three daemons at the host tests' 0.005 take
# most of the guest's CPU, and a window of about a second still sees tens of steps of each). On
# SIGTERM it finishes the iteration, lets psql commit
# what it was sent and exits, so after `systemctl stop` the table and the files agree.
# MSB_FAKE_SYNC=1 (for quiesce freeze): each UPDATE is committed before the file is written (by a
# rename), so a freeze at any instant leaves the file equal to the database or one behind, never ahead.
MSB_FAKE_SERVICES=(maas-regiond maas-rackd maas-dhcpd)
msb_install_fake_maas() {
  id -u maas >/dev/null 2>&1 || useradd --system --home-dir /var/lib/maas --shell /usr/sbin/nologin maas
  install -d -o maas -g maas -m 0755 /var/lib/maas
  # The daemon is Tests/Fixtures/stand-in-maasd.sh, which run-vm-tests.sh puts beside lib.sh.
  install -m 0755 "$MSB_IN/stand-in-maasd.sh" /usr/local/sbin/msb-fake-maas-daemon
  local s
  for s in "${MSB_FAKE_SERVICES[@]}"; do
    cat >/etc/systemd/system/$s.service <<UNIT
[Unit]
Description=stand-in $s for the maas-snapshot-backup system tests
After=postgresql.service
[Service]
User=maas
RuntimeDirectory=%N
Environment=MSB_FAKE_INTERVAL=${MSB_FAKE_INTERVAL:-0.05} MSB_FAKE_SYNC=${MSB_FAKE_SYNC:-0}
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

# --- a MAAS host to back up ----------------------------------------------------------------------
# Fills /etc/maas and /var/lib/maas with files of several owners and modes (config, secrets, a
# large blob of BLOB_MB MiB, a symlink, an empty folder, boot-resources that must be left out) and
# records them in $MSB_RESULTS/expected-files ("path type mode user:group sha256" lines).
msb_fill_maas_tree() { # [BLOB_MB]
  local mb=${1:-16}
  id -u maas >/dev/null 2>&1 || useradd --system --home-dir /var/lib/maas --shell /usr/sbin/nologin maas
  install -d -o root -g maas -m 0775 /etc/maas
  install -d -o maas -g maas -m 0755 /var/lib/maas
  printf 'maas_url: http://10.0.0.1:5240/MAAS\ndatabase_host: /var/run/postgresql\ndatabase_name: maasdb\n' >/etc/maas/regiond.conf
  chown root:maas /etc/maas/regiond.conf; chmod 0640 /etc/maas/regiond.conf
  printf 'maas_url: http://10.0.0.1:5240/MAAS\n' >/etc/maas/rackd.conf; chmod 0644 /etc/maas/rackd.conf
  install -d -o maas -g maas -m 0700 /etc/maas/certificates
  head -c 1700 /dev/urandom | base64 >/etc/maas/certificates/maas.key
  chown maas:maas /etc/maas/certificates/maas.key; chmod 0600 /etc/maas/certificates/maas.key
  head -c 32 /dev/urandom | base64 >/var/lib/maas/secret
  chown maas:maas /var/lib/maas/secret; chmod 0640 /var/lib/maas/secret
  install -d -o maas -g maas -m 0755 /var/lib/maas/image-storage /var/lib/maas/empty "/var/lib/maas/with space"
  head -c "${mb}M" /dev/urandom >/var/lib/maas/image-storage/blob
  chown maas:maas /var/lib/maas/image-storage/blob
  printf 'x\n' >"/var/lib/maas/with space/file ü.txt"; chmod 0604 "/var/lib/maas/with space/file ü.txt"
  ln -sfn image-storage/blob /var/lib/maas/blob-link
  install -d -o maas -g maas /var/lib/maas/boot-resources/current
  head -c 1M /dev/urandom >/var/lib/maas/boot-resources/current/root-tgz
  sync
  msb_tree_listing /etc/maas /var/lib/maas | grep -v -e '\.counter ' -e '^var/lib/maas/boot-resources' \
    >"$MSB_RESULTS/expected-files"
}

# "path type mode user:group sha256" for every entry below the given absolute paths, paths relative
# to / (or to ROOT when MSB_TREE_ROOT is set), sorted.
msb_tree_listing() {
  local root=${MSB_TREE_ROOT:-}
  local p
  for p in "$@"; do
    (cd "$root/" && find "${p#/}" -printf '%p %y %m %u:%g\n') | while read -r line; do
      local path=${line% * * *} rest=${line##"${line% * * *}"} sum=-
      [[ -f $root/$path && ! -L $root/$path ]] && sum=$(sha256sum <"$root/$path" | cut -c1-64)
      printf '%s%s %s\n' "$path" "$rest" "$sum"
    done
  done | LC_ALL=C sort
}

# Writes /etc/maas-snapshot-backup/config.yaml for the stand-in services; extra YAML from stdin.
msb_write_config() {
  mkdir -p /etc/maas-snapshot-backup
  # The package's own files (hooks/, the shipped config) must survive the scenario: deleting them
  # would break apt, whose hook configuration names them.
  if [[ -z ${_msb_config_kept:-} ]]; then
    _msb_config_kept=1
    if [[ -f /etc/maas-snapshot-backup/config.yaml ]]; then
      cp -p /etc/maas-snapshot-backup/config.yaml /etc/maas-snapshot-backup/config.yaml.msb-saved
      msb_defer "mv -f /etc/maas-snapshot-backup/config.yaml.msb-saved /etc/maas-snapshot-backup/config.yaml"
    else
      msb_defer "rm -f /etc/maas-snapshot-backup/config.yaml"
    fi
  fi
  {
    printf 'services:\n'
    printf '  - %s\n' "${MSB_FAKE_SERVICES[@]}"
    printf 'database:\n  name: maasdb\n  os_user: postgres\n'
    # Stop by default (the counters then agree exactly); the freeze scenario sets MSB_QUIESCE.
    printf 'quiesce: %s\n' "${MSB_QUIESCE:-stop}"
    [[ -t 0 ]] || cat
  } >/etc/maas-snapshot-backup/config.yaml
  msb_defer "rm -rf /var/backups/maas-snapshot-backup /var/lib/maas-snapshot-backup"
}

# PostgreSQL's data and /var/lib/maas on two 1 GiB LVs with FSTYPE in a new volume group on the
# data disk (scenarios 10, 11 and 17).
msb_lvm_pg_and_maas() { # FSTYPE
  local fs=$1
  msb_make_vg
  msb_make_lv pg 1G; msb_mkfs "/dev/$MSB_VG/pg" "$fs"
  msb_pgdata_on "/dev/$MSB_VG/pg" "$fs"
  msb_make_lv maas 1G; msb_mkfs "/dev/$MSB_VG/maas" "$fs"
  msb_mount_over "/dev/$MSB_VG/maas" "$fs" /var/lib/maas
}

# A MAAS host on the volumes made so far: maasdb with the real schema of VERSION (default 3.4.0),
# the stand-in MAAS services (not started), the tree with a BLOB_MB MiB blob (default 16) and the
# default config.
msb_maas_host() { # [VERSION] [BLOB_MB]
  msb_load_maasdb "${1:-3.4.0}"
  msb_install_fake_maas
  msb_fill_maas_tree "${2:-16}"
  msb_write_config </dev/null
}

# Runs a backup: msb_backup ARGS... ; sets MSB_BACKUP_RC and MSB_BACKUP_JSON (the --json output).
msb_backup() {
  local t0=$SECONDS
  set +e
  # A crash prints a symbolicated backtrace (the runner installs swift-backtrace-static when the host has it).
  local bt=
  [[ -x /usr/local/libexec/swift-backtrace-static ]] &&
    bt=enable=yes,interactive=no,output-to=stderr,swift-backtrace=/usr/local/libexec/swift-backtrace-static
  MSB_BACKUP_JSON=$(SWIFT_BACKTRACE=$bt maas-snapshot-backup backup --json "$@" 2>"$MSB_RESULTS/backup.stderr")
  MSB_BACKUP_RC=$?
  set -e
  printf '%s\n' "$MSB_BACKUP_JSON" >"$MSB_RESULTS/backup.json"
  msb_log "backup $* -> exit $MSB_BACKUP_RC in $((SECONDS - t0)) s"
  sed 's/^/  stderr| /' "$MSB_RESULTS/backup.stderr" | tail -n 30
}

# After any backup run: services back up, no snapshot LV, mount or partial archive left behind.
msb_check_no_leftovers() {
  msb_fake_maas_all_active || msb_fail "not every MAAS service is active after the backup"
  msb_log "ok: services active after the backup"
  local lvs_left
  lvs_left=$(lvs --noheadings -o lv_name 2>/dev/null | tr -d ' ' | grep '^msb-' || true)
  [[ -z $lvs_left ]] || msb_fail "snapshot LVs left behind: $lvs_left"
  if grep -q ' /var/backups/maas-snapshot-backup/' /proc/self/mountinfo; then
    msb_fail "mounts left below the destination: $(grep ' /var/backups/maas-snapshot-backup/' /proc/self/mountinfo)"
  fi
  if compgen -G '/var/backups/maas-snapshot-backup/*.partial' >/dev/null; then msb_fail "a .partial archive was left"; fi
  if compgen -G '/var/backups/maas-snapshot-backup/.msb-*' >/dev/null; then msb_fail "a private run folder was left"; fi
  msb_log "ok: no snapshot, mount, partial archive or private folder left"
}

# Checks the archive of a successful backup against the live system and its own manifest:
# the static files byte-identical with owners and modes, boot-resources left out, every file's
# sha256/size/mode/owner as the manifest says, per-table row counts of dump.sql equal to the
# manifest's, the database counter of each stand-in service equal to its file counter, and
# manifest.json then its signature manifest.sig the last members. Adds the window timings to the summary.
msb_check_archive() {
  local archive
  archive=$(jq -r '.archive // empty' <<<"$MSB_BACKUP_JSON")
  [[ -n $archive && -f $archive ]] || msb_fail "the backup reported no archive: $MSB_BACKUP_JSON"
  local dest; dest=$(dirname "$archive")
  msb_assert_eq 600 "$(stat -c %a "$archive")" "archive mode"
  msb_assert_eq 700 "$(stat -c %a "$dest")" "destination folder mode"
  [[ -f $archive.manifest.json ]] || msb_fail "no sidecar manifest beside $archive"
  msb_assert_eq "manifest.json manifest.sig" "$(tar -tzf "$archive" | tail -n 2 | tr '\n' ' ' | sed 's/ $//')" "last archive members"

  local x=/var/tmp/msb-extract
  rm -rf "$x"; mkdir -p "$x"
  msb_defer "rm -rf $x"
  tar --numeric-owner -xpzf "$archive" -C "$x"
  local m=$x/manifest.json
  cmp -s "$m" "$archive.manifest.json" || msb_fail "sidecar manifest differs from the archived one"

  # Static files: identical to the live ones, owners and modes included.
  MSB_TREE_ROOT=$x msb_tree_listing /etc/maas /var/lib/maas | grep -v '\.counter ' >"$MSB_RESULTS/archived-files"
  diff -u "$MSB_RESULTS/expected-files" "$MSB_RESULTS/archived-files" >&2 ||
    msb_fail "archived files differ from the live ones (diff above)"
  msb_log "ok: $(wc -l <"$MSB_RESULTS/expected-files") entries identical (content, type, mode, owner)"
  [[ ! -e $x/var/lib/maas/boot-resources ]] || msb_fail "boot-resources was archived"

  # Every file record of the manifest matches the extracted file.
  local bad
  bad=$(jq -r '.files[] | select(.type == "file" or .type == "regular") | [.path, .sha256, .size, .mode, .uid, .gid] | @tsv' "$m" |
    while IFS=$'\t' read -r path sum size mode uid gid; do
      f=$x/$path
      [[ -f $f ]] || { echo "missing $path"; continue; }
      [[ $(sha256sum <"$f" | cut -c1-64) == "$sum" ]] || echo "sha256 $path"
      [[ $(stat -c %s "$f") == "$size" ]] || echo "size $path"
      [[ $((8#$(stat -c %a "$f"))) == $((8#$mode)) ]] || echo "mode $path"
      [[ $(stat -c %u:%g "$f") == "$uid:$gid" ]] || echo "owner $path"
    done)
  [[ -z $bad ]] || msb_fail "manifest file records do not match the archive: $bad"
  msb_log "ok: $(jq '[.files[] | select(.type == "file" or .type == "regular")] | length' "$m") manifest file records match"

  # Row counts: dump.sql's COPY blocks against the manifest, table by table.
  [[ -f $x/dump.sql ]] || msb_fail "no dump.sql in the archive"
  local db; db=$(jq -r '.database.maas_database' "$m")
  msb_dump_row_counts "$x/dump.sql" | awk -v db="$db" '$1 == db || $1 == "-" { gsub(/"/, "", $2); print $2, $3 }' |
    LC_ALL=C sort >"$MSB_RESULTS/dump-rows"
  jq -r --arg db "$db" '.database.row_counts[$db] | to_entries[] | "\(.key | gsub("\""; "")) \(.value)"' "$m" |
    LC_ALL=C sort >"$MSB_RESULTS/manifest-rows"
  [[ $(wc -l <"$MSB_RESULTS/manifest-rows") -gt 0 ]] || msb_fail "the manifest has no row counts for $db"
  diff -u "$MSB_RESULTS/manifest-rows" "$MSB_RESULTS/dump-rows" >&2 ||
    msb_fail "row counts in dump.sql differ from the manifest (diff above)"
  msb_log "ok: row counts of $(wc -l <"$MSB_RESULTS/dump-rows") tables equal to the manifest"

  # Stopped in the window, the stand-in services left database and files at the same number;
  # frozen (crash-consistent), a file may lag its database by one step, never lead it.
  local s dbn filen quiesce
  quiesce=$(jq -r '.window.quiesce // "stop"' "$m")
  for s in "${MSB_FAKE_SERVICES[@]}"; do
    dbn=$(msb_dump_counter "$x/dump.sql" "$s")
    filen=$(cat "$x/var/lib/maas/$s.counter" 2>/dev/null || echo missing)
    [[ -n $dbn ]] || msb_fail "dump.sql has no counter row for $s"
    if [[ $quiesce == freeze && $filen == $((dbn - 1)) ]]; then
      msb_log "ok: $s counter: file $filen lags dump.sql $dbn by one (frozen between commit and write)"
    else
      msb_assert_eq "$dbn" "$filen" "$s counter: dump.sql vs archived file ($quiesce)"
    fi
  done

  local down steps
  down=$(jq -r '.window.downtime_ms' "$m")
  steps=$(jq -r '[.window.steps[] | "\(.step | sub("^snapshot /.*/"; "snap ")) \(.ms)"] | join(", ")' "$m")
  msb_summary "$quiesce: downtime ${down} ms [$steps]; archive $(($(stat -c %s "$archive") >> 10)) KiB; method $(jq -r .snapshot_method "$m")"
}

# The method the archive's manifest records for PATH: msb_assert_method PATH METHOD
msb_assert_method() {
  local archive
  archive=$(jq -r '.archive' <<<"$MSB_BACKUP_JSON")
  msb_assert_eq "$2" "$(jq -r --arg p "$1" '.paths[] | select(.path == $p) | .method' "$archive.manifest.json")" "method of $1"
}

# The usual end of a scenario: stand-in services running, config written (extra YAML on stdin),
# a backup with ARGS that must succeed, its archive checked, nothing left behind; then the services
# are stopped and their live counters compared.
msb_backup_and_check() {
  msb_start_fake_maas
  sleep 2
  msb_backup "$@"
  msb_assert_eq 0 "$MSB_BACKUP_RC" "backup exit code"
  msb_check_archive
  msb_check_no_leftovers
  systemctl stop "${MSB_FAKE_SERVICES[@]}"
  msb_check_live_counters
}
