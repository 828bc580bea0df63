#!/usr/bin/env bash
# A self-contained MAAS-like environment for the demo and the integration tests:
#   - a throwaway PostgreSQL cluster (the newest installed major, 15 on Debian 12; unix socket only) holding maasdb with the real MAAS
#     3.4.0 schema (from ../shared/fixtures/maas-schema when present) plus generated rows;
#   - a root tree DIR/root with etc/maas on the host filesystem (copied in the window) and
#     var/lib/maas on a Btrfs loop filesystem (snapshotted);
#   - a stand-in `systemctl` (DIR/bin/systemctl, fake-systemctl) that really starts and stops the
#     stand-in MAAS daemon (stand-in-maasd.sh), which keeps writing the same counter to maasdb
#     (table msb_counter, row maas-regiond) and to DIR/root/var/lib/maas/counter.
# Usage: testenv.sh up DIR [--rows N] | down DIR | env DIR
#   TESTENV_SCHEMA: the schema file of ../shared/fixtures/maas-schema to load (default maas-3.4.0;
#     maas-3.5.0 for the image-storage tests).
#   TESTENV_BTRFS_SIZE: size of the Btrfs loop image (default 512M; the benchmark makes it bigger).
#   TESTENV_REGIOND_PAUSE, TESTENV_RACKD_PAUSE: seconds the stand-in daemons sleep between writes
#     (default 0.005 and 0.01: about 200 database updates a second over one psql session, so the
#     tests catch any write in the window; the benchmark sets 0.1 for a machine about as busy as
#     an idle MAAS).
set -euo pipefail
cmd=${1:?usage: testenv.sh up|down|env DIR}
dir=${2:?usage: testenv.sh up|down|env DIR}
shift 2
rows=2000
while [ $# -gt 0 ]; do case $1 in --rows) rows=$2; shift 2;; *) echo "unknown option $1" >&2; exit 64;; esac; done
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# MSB_PG_BIN names another server's bin folder; by default the newest major installed (Debian's
# default PostgreSQL: 15 on Debian 12, 17 on Debian 13).
pgbin=${MSB_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
[ -x "$pgbin/initdb" ] || { echo "testenv: no PostgreSQL server found under /usr/lib/postgresql (apt-get install postgresql)" >&2; exit 69; }
# TESTENV_SCHEMA: a schema file (a path), or the name of one in ../shared/fixtures/maas-schema ("maas-3.5.0").
case ${TESTENV_SCHEMA:-} in
  */*) schema=$TESTENV_SCHEMA ;;
  *) schema="$repo/../shared/fixtures/maas-schema/${TESTENV_SCHEMA:-maas-3.4.0}.sql" ;;
esac

as_pg() { runuser -u postgres -- "$@"; }
psql_maas() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/pgsock" -U postgres "$@"; }
# As MAAS sets it up: the maas role (no superuser) owns maasdb and everything in it.
psql_owner() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/pgsock" -U maas "$@"; }

case $cmd in
up)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  chmod 755 "$dir"
  mkdir -p "$dir/pgsock" "$dir/bin" "$dir/svc" "$dir/root/etc/maas" "$dir/root/var/lib/maas" "$dir/backups"
  chown postgres "$dir/pgsock"
  # PostgreSQL
  install -d -o postgres -m 700 "$dir/pg"
  as_pg "$pgbin/initdb" -D "$dir/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  as_pg "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/pg/log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories='$dir/pgsock' -c fsync=off" start >/dev/null
  psql_maas -d postgres -c "CREATE ROLE maas LOGIN PASSWORD 'not-a-real-secret'"
  "$pgbin/createdb" -h "$dir/pgsock" -U postgres -O maas maasdb
  if [ -f "$schema" ]; then
    psql_owner -d maasdb -f "$schema" >/dev/null
    psql_owner -d maasdb -c "ALTER SCHEMA public OWNER TO maas" >/dev/null
    psql_owner -d maasdb <<SQL >/dev/null
INSERT INTO maasserver_eventtype (created, updated, name, description, level)
  SELECT now(), now(), 'TEST_' || g, 'test event type ' || g, 20 FROM generate_series(1, 10) g;
INSERT INTO maasserver_event (created, updated, action, description, type_id, node_hostname, username, user_agent, endpoint)
  SELECT now(), now(), 'deploy', repeat('output line of a script ' || g || E'\n', 1 + g % 200),
         (SELECT min(id) FROM maasserver_eventtype) + g % 10, 'node-' || g % 97, 'admin', 'test', 0
  FROM generate_series(1, $rows) g;
SQL
  else
    echo "testenv: ../shared/fixtures/maas-schema/maas-3.4.0.sql is absent: using a small stand-in schema" >&2
    psql_owner -d maasdb <<SQL >/dev/null
CREATE TABLE django_migrations (id serial PRIMARY KEY, app text, name text, applied timestamptz);
INSERT INTO django_migrations (app, name, applied) VALUES ('maasserver', '0304_interface_add_neighbour_discovery_state', now());
CREATE TABLE maasserver_event (id bigserial PRIMARY KEY, description text);
INSERT INTO maasserver_event (description) SELECT repeat('line ' || g, 50) FROM generate_series(1, $rows) g;
SQL
  fi
  psql_owner -d maasdb <<SQL >/dev/null
CREATE TABLE msb_counter (service text PRIMARY KEY, n bigint NOT NULL);
INSERT INTO msb_counter VALUES ('maas-regiond', 0);
SELECT lo_from_bytea(0, convert_to(repeat('large object standing in for a boot image ', 20000), 'UTF8'));
SELECT lo_from_bytea(0, decode(repeat('00ff', 50000), 'hex'));
SQL
  # Files: /etc/maas on the host filesystem, /var/lib/maas on Btrfs.
  truncate -s "${TESTENV_BTRFS_SIZE:-512M}" "$dir/btrfs.img"
  mkfs.btrfs -q "$dir/btrfs.img" >/dev/null 2>&1
  loop=$(losetup -f --show "$dir/btrfs.img")
  echo "$loop" > "$dir/loopdev"
  mount "$loop" "$dir/root/var/lib/maas"
  cat > "$dir/root/etc/maas/regiond.conf" <<CONF
database_host: $dir/pgsock
database_name: maasdb
database_user: postgres
maas_url: http://127.0.0.1:5240/MAAS
CONF
  chmod 640 "$dir/root/etc/maas/regiond.conf"
  echo "rackd: test" > "$dir/root/etc/maas/rackd.conf"
  m="$dir/root/var/lib/maas"
  mkdir -p "$m/boot-resources/current" "$m/image-storage" "$m/empty-dir" "$m/certificates"
  head -c 4M /dev/urandom > "$m/boot-resources/current/squashfs"
  head -c 3M /dev/urandom > "$m/image-storage/blob-random"
  { yes "half compressible image data" || true; } | head -c 3M > "$m/image-storage/blob-text"
  ln "$m/image-storage/blob-text" "$m/image-storage/blob-text-hardlink"
  ln -s image-storage/blob-text "$m/current-image"
  openssl rand -hex 16 > "$m/secret"; chmod 640 "$m/secret"
  echo "cert" > "$m/certificates/maas.crt"; chown 65534:65534 "$m/certificates/maas.crt"; chmod 600 "$m/certificates/maas.crt"
  echo 0 > "$m/counter"
  # A non-ASCII name (a crash in the C locale once): archived, verified and restored like any other.
  echo "utf-8 name" > "$m/certificates/région ü.txt"
  # The stand-in systemctl and its daemons.
  install -m 755 "$here/fake-systemctl" "$dir/bin/systemctl"
  # Both daemons are Tests/Fixtures/stand-in-maasd.sh: regiond counts in maasdb and in
  # var/lib/maas/counter; rackd only rewrites var/lib/maas/rackd-heartbeat.
  cat > "$dir/svc/maas-regiond.sh" <<D
#!/usr/bin/env bash
PGHOST="$dir/pgsock" PGUSER=postgres MSB_FAKE_PSQL="$pgbin/psql" MSB_FAKE_FILE="$m/counter" MSB_FAKE_ATOMIC=1 MSB_FAKE_SYNC=1 \\
  MSB_FAKE_INTERVAL=${TESTENV_REGIOND_PAUSE:-0.005} exec "$here/stand-in-maasd.sh" maas-regiond
D
  cat > "$dir/svc/maas-rackd.sh" <<D
#!/usr/bin/env bash
MSB_FAKE_DATABASE=none MSB_FAKE_FILE="$m/rackd-heartbeat" MSB_FAKE_INTERVAL=${TESTENV_RACKD_PAUSE:-0.01} \\
  exec "$here/stand-in-maasd.sh" maas-rackd
D
  chmod 755 "$dir/svc/"*.sh
  PATH="$dir/bin:$PATH" FAKE_SYSTEMCTL_DIR="$dir/svc" systemctl start maas-regiond maas-rackd
  cat > "$dir/config.yaml" <<CONF
root: $dir/root
destination: $dir/backups
database:
  host: $dir/pgsock
  user: postgres
  name: maasdb
  os_user: root
lock_file: $dir/lock
state_dir: $dir/state
signing_key: $dir/signing-key
services: [maas-regiond, maas-rackd, maas-dhcpd]
# The tests keep every archive they make (UnattendedTests turns the retention after backups on).
retention:
  after_backup: false
CONF
  echo "testenv: up in $dir (config $dir/config.yaml)"
  ;;
down)
  [ -d "$dir" ] || exit 0
  dir=$(cd "$dir" && pwd)
  PATH="$dir/bin:$PATH" FAKE_SYSTEMCTL_DIR="$dir/svc" "$dir/bin/systemctl" stop maas-regiond maas-rackd maas-dhcpd 2>/dev/null || true
  [ -f "$dir/pg/postmaster.pid" ] && as_pg "$pgbin/pg_ctl" -D "$dir/pg" -m immediate -w stop >/dev/null 2>&1 || true
  for mnt in $(awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
    umount "$mnt" 2>/dev/null || { sleep 0.5; umount "$mnt" 2>/dev/null; } || umount -l "$mnt" || true
  done
  [ -f "$dir/loopdev" ] && losetup -d "$(cat "$dir/loopdev")" 2>/dev/null || true
  rm -rf "$dir"
  ;;
env)
  echo "export PATH=$dir/bin:\$PATH FAKE_SYSTEMCTL_DIR=$dir/svc"
  ;;
*) echo "usage: testenv.sh up|down|env DIR" >&2; exit 64;;
esac
