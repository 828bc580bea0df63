#!/bin/bash
# Builds stand-in MAAS packages with dpkg-deb, for the package tests (scenarios/pkg-*.sh):
#
#   build-fake-maas.sh OUTDIR [FIXTURES]
#
# Writes into OUTDIR three versions of maas-region-controller (Architecture all, Depends postgresql):
#   v1  1:3.4.0-0msb1  creates database maasdb (the real MAAS 3.4.0 schema from FIXTURES when
#                      there, else an empty one), /etc/maas/regiond.conf and /var/lib/maas, and
#                      starts maas-regiond: a real systemd unit whose daemon keeps bumping a
#                      counter in table msb_counter and in /var/lib/maas/maas-regiond.counter.
#   v2  1:3.5.0-0msb1  its postinst migrates the database from the 3.4.0 schema towards 3.5.0
#                      (schema temporal, a new maasserver migration row, msb_fake_schema 3.5.0)
#                      with the service stopped, then starts it again.
#   v3  1:3.6.0-0msb1  its postinst starts a migration, leaves it half done and fails (exit 1).
# and maas-cli 1:3.4.0-0msb1 (no scripts), for fresh-install checks. Prints the .deb paths.
# Table msb_fake_schema holds the fake schema version: 3.4.0, 3.5.0 or 3.6.0-partial.
set -euo pipefail

out=${1:?usage: build-fake-maas.sh OUTDIR [FIXTURES]}
fixtures=${2:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The daemon: Tests/Fixtures/stand-in-maasd.sh, found beside fake-maas/ in the VM's input
# (run-vm-tests.sh copies it there) or in the source tree; MSB_STANDIN_MAASD names another.
here=$(cd "$(dirname "$0")" && pwd)
standin=${MSB_STANDIN_MAASD:-}
for c in "$here/../stand-in-maasd.sh" "$here/../../Fixtures/stand-in-maasd.sh"; do
  [[ -z $standin && -f $c ]] && standin=$c
done
[[ -n $standin ]] || { echo "build-fake-maas.sh: stand-in-maasd.sh not found" >&2; exit 1; }

unit() {
  cat <<'UNIT'
[Unit]
Description=stand-in MAAS region controller (maas-snapshot-backup package tests)
After=postgresql.service
Requires=postgresql.service

[Service]
User=maas
RuntimeDirectory=%N
Environment=MSB_FAKE_INTERVAL=0.05
ExecStart=/usr/lib/maas-fake/maas-fake-daemon maas-regiond
KillMode=mixed
TimeoutStopSec=60

[Install]
WantedBy=multi-user.target
UNIT
}

# Shell functions shared by the maintainer scripts.
common() {
  cat <<'COMMON'
pg() { runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
# As MAAS's own dbupgrade: the database's owner, maas, creates and changes its objects (a real
# region's maasdb holds nothing of postgres's; restore loads it as its owner).
pgm() { runuser -u maas -- psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
schema_version() { pg -d maasdb -c "select version from msb_fake_schema" 2>/dev/null || true; }
COMMON
}

postinst_v1() {
  cat <<EOF
#!/bin/bash
set -e
$(common)
if [ "\$1" = configure ]; then
  getent passwd maas >/dev/null || useradd --system --home-dir /var/lib/maas --shell /usr/sbin/nologin maas
  install -d -o maas -g maas -m 0755 /var/lib/maas
  install -d -o root -g maas -m 0775 /etc/maas
  if [ ! -f /etc/maas/regiond.conf ]; then
    printf 'maas_url: http://127.0.0.1:5240/MAAS\ndatabase_host: /var/run/postgresql\ndatabase_name: maasdb\ndatabase_user: maas\n' >/etc/maas/regiond.conf
    chown root:maas /etc/maas/regiond.conf
    chmod 0640 /etc/maas/regiond.conf
  fi
  if [ -z "\$(pg -c "select 1 from pg_database where datname = 'maasdb'")" ]; then
    pg -c "DO \\\$\\\$ BEGIN CREATE ROLE maas LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \\\$\\\$"
    pg -c "CREATE DATABASE maasdb OWNER maas"
    if [ -f /usr/share/maas-fake/maas-3.4.0.sql ]; then
      pgm -d maasdb -f /usr/share/maas-fake/maas-3.4.0.sql >/dev/null
    fi
    pgm -d maasdb -c "CREATE TABLE msb_counter (service text PRIMARY KEY, n bigint NOT NULL); ALTER TABLE msb_counter OWNER TO maas" \
                 -c "CREATE TABLE msb_fake_schema (version text NOT NULL); INSERT INTO msb_fake_schema VALUES ('3.4.0')"
  fi
  systemctl daemon-reload
  systemctl enable maas-regiond.service
  systemctl restart maas-regiond.service
fi
exit 0
EOF
}

postinst_v2() {
  cat <<EOF
#!/bin/bash
set -e
$(common)
if [ "\$1" = configure ]; then
  systemctl daemon-reload
  systemctl stop maas-regiond.service || true
  if [ "\$(schema_version)" = 3.4.0 ]; then
    # What "maas-region dbupgrade" does from 3.4 to 3.5, in miniature.
    pgm -d maasdb -c "BEGIN" \\
       -c "CREATE SCHEMA IF NOT EXISTS temporal" \\
       -c "CREATE TABLE temporal.executions (shard_id integer, namespace_id bytea, workflow_id text, PRIMARY KEY (shard_id, workflow_id))" \\
       -c "DO \\\$\\\$ BEGIN IF to_regclass('public.django_migrations') IS NOT NULL THEN INSERT INTO django_migrations (app, name, applied) VALUES ('maasserver', '0305_msb_fake_3_5', now()); END IF; END \\\$\\\$" \\
       -c "UPDATE msb_fake_schema SET version = '3.5.0'" \\
       -c "COMMIT"
  fi
  systemctl enable maas-regiond.service
  systemctl start maas-regiond.service
fi
exit 0
EOF
}

postinst_v3() {
  cat <<EOF
#!/bin/bash
set -e
$(common)
if [ "\$1" = configure ]; then
  systemctl daemon-reload
  systemctl stop maas-regiond.service || true
  # A migration that dies half way: some changes are committed, then it fails.
  pgm -d maasdb -c "UPDATE msb_fake_schema SET version = '3.6.0-partial'" \\
               -c "ALTER TABLE msb_counter ADD COLUMN msb_broken integer"
  echo "maas-region-controller: database migration 0400_msb_fake_3_6 failed" >&2
  exit 1
fi
exit 0
EOF
}

prerm() {
  cat <<'EOF'
#!/bin/sh
set -e
systemctl stop maas-regiond.service || true
exit 0
EOF
}

postrm() {
  cat <<'EOF'
#!/bin/sh
set -e
case "$1" in
  remove) systemctl daemon-reload || true ;;
  purge) rm -rf /etc/maas /var/lib/maas; systemctl daemon-reload || true ;;
esac
exit 0
EOF
}

build() { # NAME VERSION POSTINST-FUNCTION|- [with-daemon]
  local name=$1 version=$2 postinst=$3 daemon_too=${4:-}
  local root=$work/$name-$version
  mkdir -p "$root/DEBIAN"
  cat >"$root/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: all
Maintainer: maas-snapshot-backup tests <tests@example.invalid>
Depends: postgresql
Section: net
Priority: optional
Description: stand-in $name for the maas-snapshot-backup package tests
 Not MAAS: a service that counts, and maintainer scripts that change the database like a
 MAAS upgrade would.
EOF
  if [[ -n $daemon_too ]]; then
    install -d "$root/usr/lib/maas-fake" "$root/lib/systemd/system" "$root/usr/share/maas-fake"
    install -m 0755 "$standin" "$root/usr/lib/maas-fake/maas-fake-daemon"
    unit >"$root/lib/systemd/system/maas-regiond.service"
    if [[ -n $fixtures && -f $fixtures/maas-3.4.0.sql ]]; then
      cp "$fixtures/maas-3.4.0.sql" "$root/usr/share/maas-fake/"
    fi
    echo "$version" >"$root/usr/share/maas-fake/version"
    prerm >"$root/DEBIAN/prerm"
    postrm >"$root/DEBIAN/postrm"
    chmod 0755 "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
  fi
  if [[ $postinst != - ]]; then
    "$postinst" >"$root/DEBIAN/postinst"
    chmod 0755 "$root/DEBIAN/postinst"
  fi
  local deb=$out/${name}_${version#*:}_all.deb
  dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
  echo "$deb"
}

build maas-region-controller 1:3.4.0-0msb1 postinst_v1 daemon
build maas-region-controller 1:3.5.0-0msb1 postinst_v2 daemon
build maas-region-controller 1:3.6.0-0msb1 postinst_v3 daemon
build maas-cli 1:3.4.0-0msb1 -
