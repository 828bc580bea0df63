#!/bin/bash
# Builds stand-in MAAS packages from MAAS's own debian/ folders (tests only), with dpkg-deb:
#
#   build-standin-maas.sh OUTDIR PACKAGING SCHEMAS VERSION...   the MAAS packages, and OUTDIR/externals
#   build-standin-maas.sh --deps OUTDIR                           msb-standin-maas-deps, from OUTDIR/externals
#
# run-vm-tests.sh runs the first on the host (dpkg-deb under TCG is slow: minutes per version) and
# packs the .debs onto the VM's input disk; the guest runs the second, which needs to know what the
# guest has installed.
# PACKAGING is ../shared/fixtures/maas-packaging (VERSION: a folder there, e.g. 3.4.10), SCHEMAS is
# ../shared/fixtures/maas-schema. Read at test time, never copied into the repository. For each
# VERSION, every binary package of debian/control but the transitional maas-dns, with:
#   - the name and the version of debian/changelog (with its epoch, e.g. 1:3.5.13-0ubuntu1) and
#     Depends, Pre-Depends, Conflicts, Breaks, Replaces, Provides as control has them
#     (${binary:Version} filled in, ${misc:Depends} ${python3:Depends} ${shlibs:Depends} dropped);
#   - the unit files debian/<package>.<unit>.service byte for byte in /lib/systemd/system, enabled,
#     started or restarted by the postinst as debian/rules' dh_installsystemd lines say (--no-start,
#     --restart-after-upgrade), stopped by the prerm on removal;
#   - the sudoers files and small extras of <package>.install (debian/extras/*), the folders of
#     <package>.dirs, conffiles for what is under /etc;
#   - maintainer scripts that do what MAAS's do to this system: the maas user and group, owners of
#     /etc/maas and /var/lib/maas, /var/lib/maas/dhcp root:dhcpd, rackd.conf and regiond.conf, the
#     preinst's `rm -rf /var/lib/maas/boot-resources` where MAAS's preinst has it, the
#     maas-region-controller postinst's database creation and `maas-region dbupgrade`, and the
#     deb-systemd-helper/deb-systemd-invoke lines of MAAS's own postinst (taken from it);
#   - stand-ins for the programs the units start, at the paths the units name (regiond, rackd,
#     maas-apiserver, maas-temporal-worker, maas-agent, maas-dhcp-helper; maas-region, maas-rack).
# And one msb-standin-maas-deps 1.0 that Provides every package outside MAAS the MAAS packages
# depend on (bind9, squid, isc-dhcp-server, temporal, python3-*, ...) but those the guest really
# has installed (postgresql, iproute2, ...), creates the dhcpd user as isc-dhcp-server does, and
# holds the stand-in daemons: /usr/lib/msb-standin/maasd (Tests/Fixtures/stand-in-maasd.sh),
# /usr/sbin/dhcpd and /usr/sbin/temporal-server.
#
# Stand-in behaviour (knobs in /run/msb-standin/env, read by each program when it starts):
#   regiond     counts (table msb_counter and /var/lib/maas/maas-regiond.counter, every
#               MSB_REGION_INTERVAL s, default 0.02, committed before the file is written) and
#               "serves" MSB_REGION_SERVE_DELAY s (default 40, real MAAS's) after its start: it
#               writes its PID to /run/msb-standin/region-serving.
#   rackd       counts; once the region serves, writes /var/lib/maas/dhcpd.conf and
#               dhcpd-interfaces and runs `sudo systemctl restart maas-dhcpd` (MAAS's sudoers rule),
#               and on 3.5+ writes /etc/maas/agent.yaml and restarts maas-agent the same way.
#   dhcpd       counts in /var/lib/maas/dhcp/maas-dhcpd.counter as user dhcpd (no database).
#   others      count every MSB_OTHER_INTERVAL s (default 0.5).
#   maas-region dbupgrade  brings maasdb to this version's schema: the real 3.4.0 one for 3.4.x,
#               the real 3.5.0 one for 3.5.x and later (3.6.x adds one migration row,
#               maasserver 9999_msb_standin_3_6, for a schema head of its own), in one transaction
#               that keeps table msb_counter. With /run/msb-standin/dbupgrade-fail present it commits
#               part of the migration (schema temporal, the first half of 3.5's new maasserver
#               migration rows) and fails (exit 1), leaving the database half-migrated.
# Prints the paths of the .debs it wrote.
set -euo pipefail

deps_only=0
if [[ ${1:-} == --deps ]]; then deps_only=1; shift; fi
out=${1:?usage: build-standin-maas.sh OUTDIR PACKAGING SCHEMAS VERSION... | --deps OUTDIR}
if ((!deps_only)); then
  packaging=${2:?}
  schemas=${3:?}
  shift 3
  (($#)) || { echo "build-standin-maas.sh: no VERSION given" >&2; exit 64; }
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
standin=${MSB_STANDIN_MAASD:-}
for c in "$here/../stand-in-maasd.sh" "$here/../../Fixtures/stand-in-maasd.sh"; do
  [[ -z $standin && -f $c ]] && standin=$c
done
[[ -n $standin ]] || { echo "build-standin-maas.sh: stand-in-maasd.sh not found" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
arch=$(dpkg --print-architecture)

# --- reading debian/ ----------------------------------------------------------------------------
changelog_version() { sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' "$1/changelog"; }

# The value of FIELD in the stanza of PACKAGE, continuation lines joined, one line.
control_field() { # DEBIAN PACKAGE FIELD
  awk -v pkg="$2" -v field="$3" '
    /^$/ { inpkg = 0; infield = 0; next }
    /^Package:/ { inpkg = ($2 == pkg); infield = 0; next }
    inpkg && /^[^ \t]/ { infield = (index($0, field ":") == 1); if (infield) { sub("^" field ":[ \t]*", ""); val = $0 }; next }
    inpkg && infield { sub(/^[ \t]+/, " "); val = val $0 }
    END { print val }
  ' "$1/control"
}

# A relationship field with substitutions done: ${binary:Version} filled in, ${...:Depends} dropped.
relations() { # DEBIAN PACKAGE FIELD VERSION
  control_field "$1" "$2" "$3" | sed -e "s/\${binary:Version}/$4/g" -e 's/\${[a-z0-9]*:[A-Za-z]*}//g' |
    tr ',' '\n' | sed -e 's/^[ \t]*//' -e 's/[ \t]*$//' -e 's/  */ /g' -e 's/(=\([^ ]\)/(= \1/; s/(\([<>=]*\)\([^ <>=]\)/(\1 \2/' |
    { grep -v '^$' || true; } | paste -sd, - | sed 's/,/, /g'
}

binary_packages() { awk '/^Package:/ { print $2 }' "$1/control" | grep -vx maas-dns; }

# "name" of every package named in a relationship field, alternatives included.
relation_names() { tr ',|' '\n\n' | sed -e 's/(.*//' -e 's/\[.*//' -e 's/[ \t]//g' | grep -v '^$' || true; }

# --- the stand-in programs ----------------------------------------------------------------------
common_sh() {
  cat <<'EOF'
# Shared by the stand-in MAAS programs (tests of maas-snapshot-backup only).
[ -f /run/msb-standin/env ] && . /run/msb-standin/env
export MSB_FAKE_SYNC=1
region_serving() {
  local pid
  pid=$(cat /run/msb-standin/region-serving 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}
log() { echo "$(date +%T.%3N) $*"; }
EOF
}

prog_regiond() {
  cat <<'EOF'
#!/bin/bash
# Stand-in regiond: counts, and serves MSB_REGION_SERVE_DELAY seconds after its start.
. /usr/lib/msb-standin/common.sh
rm -f /run/msb-standin/region-serving
main=$$
( sleep "${MSB_REGION_SERVE_DELAY:-40}"; echo "$main" >/run/msb-standin/region-serving; log "region serves (pid $main)" ) &
export MSB_FAKE_INTERVAL=${MSB_REGION_INTERVAL:-0.05}
exec /usr/lib/msb-standin/maasd maas-regiond
EOF
}

prog_rackd() {
  cat <<'EOF'
#!/bin/bash
# Stand-in rackd: counts; once the region serves, writes dhcpd's configuration and restarts
# maas-dhcpd through MAAS's sudoers rule, as rackd does (and maas-agent on 3.5+).
. /usr/lib/msb-standin/common.sh
(
  until region_serving; do sleep 1; done
  log "region answers: writing the DHCP configuration"
  printf '# stand-in dhcpd.conf written by rackd\nsubnet 10.0.0.0 netmask 255.255.255.0 {}\n' >/var/lib/maas/dhcpd.conf.new
  mv -f /var/lib/maas/dhcpd.conf.new /var/lib/maas/dhcpd.conf
  echo lo >/var/lib/maas/dhcpd-interfaces
  sudo -n /bin/systemctl restart maas-dhcpd && log "restarted maas-dhcpd" || log "restart of maas-dhcpd failed"
  if [ -f /lib/systemd/system/maas-agent.service ]; then
    [ -f /etc/maas/agent.yaml ] || printf 'maas_id: standin\n' >/etc/maas/agent.yaml
    sudo -n /bin/systemctl restart maas-agent && log "restarted maas-agent" || log "restart of maas-agent failed"
  fi
) &
export MSB_FAKE_INTERVAL=${MSB_OTHER_INTERVAL:-0.5}
exec /usr/lib/msb-standin/maasd maas-rackd
EOF
}

prog_counter() { # SERVICE
  cat <<EOF
#!/bin/bash
# Stand-in for the program of $1: counts.
. /usr/lib/msb-standin/common.sh
export MSB_FAKE_INTERVAL=\${MSB_OTHER_INTERVAL:-0.5}
exec /usr/lib/msb-standin/maasd $1
EOF
}

prog_dhcpd() {
  cat <<'EOF'
#!/bin/bash
# Stand-in dhcpd (isc-dhcp-server): runs as user dhcpd as `dhcpd -user dhcpd` does, counting in
# /var/lib/maas/dhcp (no database); needs its -cf file, as dhcpd does.
. /usr/lib/msb-standin/common.sh
cf=
while [ $# -gt 0 ]; do [ "$1" = -cf ] && cf=$2; shift; done
[ -n "$cf" ] && [ -f "$cf" ] || { echo "dhcpd: no configuration file $cf" >&2; exit 1; }
export MSB_FAKE_INTERVAL=${MSB_OTHER_INTERVAL:-0.5} MSB_FAKE_DATABASE=none MSB_FAKE_FILE=/var/lib/maas/dhcp/maas-dhcpd.counter
exec setpriv --reuid=dhcpd --regid=dhcpd --clear-groups /usr/lib/msb-standin/maasd maas-dhcpd
EOF
}

# maas-region: local_config_set, dbupgrade; the rest does nothing. $1: target schema, $2: 3.6 marker.
prog_maas_region() { # SCHEMA_VERSION EXTRA_MIGRATION|-
  cat <<EOF
#!/bin/bash
# Stand-in maas-region (MAAS $version): local_config_set and dbupgrade; other commands do nothing.
set -euo pipefail
schema=$1
extra=$2
EOF
  cat <<'EOF'
sql=/usr/share/maas/msb-standin/maas-$schema.sql
db=maasdb
pg() { runuser -u postgres -- psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }
# As MAAS's own dbupgrade (Django as the database's owner, maas): what it creates is maas's, as on
# a real region (peer authentication of the maas system user on the local socket).
pgm() { runuser -u maas -- psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }
head_of_db() {
  [ -n "$(pg -c "select 1 from pg_database where datname = '$db'")" ] || { echo none; return; }
  pg -d "$db" -c "select coalesce((select name from django_migrations where app = 'maasserver' order by id desc limit 1), 'empty')" 2>/dev/null || echo empty
}
migrations_of() { awk '/^COPY public.django_migrations/ { c = 1; next } c && /^\\\.$/ { c = 0 } c' "$1" | awk -F'\t' '$2 == "maasserver" { print $3 }'; }
conf=/etc/maas/regiond.conf
set_key() { # KEY VALUE
  if grep -q "^$1:" "$conf" 2>/dev/null; then sed -i "s|^$1:.*|$1: $2|" "$conf"; else echo "$1: $2" >>"$conf"; fi
}
case ${1:-} in
  local_config_set)
    shift
    [ -f "$conf" ] || { install -d /etc/maas; : >"$conf"; chmod 0640 "$conf"; set_key maas_url http://localhost:5240/MAAS; }
    while [ $# -gt 1 ]; do
      case $1 in
        --maas-url) set_key maas_url "$2" ;;
        --database-host) set_key database_host "$2" ;;
        --database-port) set_key database_port "$2" ;;
        --database-name) set_key database_name "$2" ;;
        --database-user) set_key database_user "$2" ;;
        --database-pass) set_key database_pass "$2" ;;
      esac
      shift 2
    done ;;
  dbupgrade)
    target=$(migrations_of "$sql" | tail -n1)
    [ "$extra" = - ] || target=$extra
    current=$(head_of_db)
    echo "dbupgrade: database $db at $current, MAAS wants $target"
    [ "$current" = "$target" ] && exit 0
    pg -c "DO \$\$ BEGIN CREATE ROLE maas LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$"
    if [ "$current" = none ]; then pg -c "CREATE DATABASE $db OWNER maas"; fi
    if [ -f /run/msb-standin/dbupgrade-fail ] && [ "$current" != none ] && [ "$current" != empty ]; then
      # Half way: some migrations committed, then the failure (as a migration error leaves it).
      new=$(migrations_of "$sql" | grep -vxF -f <(pg -d "$db" -c "select name from django_migrations where app = 'maasserver'"))
      half=$(( $(echo "$new" | wc -l) / 2 + 1 ))
      { echo "BEGIN;"; echo "CREATE SCHEMA IF NOT EXISTS temporal;"
        echo "$new" | head -n "$half" | sed "s/.*/INSERT INTO django_migrations (app, name, applied) VALUES ('maasserver', '&', now());/"
        echo "COMMIT;"; } | pgm -d "$db" >/dev/null
      echo "dbupgrade: migration $(echo "$new" | sed -n "$((half + 1))p") failed: django.db.utils.ProgrammingError (stand-in, /run/msb-standin/dbupgrade-fail)" >&2
      exit 1
    fi
    # The whole schema of this version, in one transaction that keeps the counter table (the
    # stand-in daemons' UPDATEs wait for it).
    {
      echo "CREATE SCHEMA IF NOT EXISTS msb_keep;"
      echo "DO \$\$ BEGIN IF to_regclass('public.msb_counter') IS NOT NULL THEN ALTER TABLE public.msb_counter SET SCHEMA msb_keep; END IF; END \$\$;"
      echo "DROP EXTENSION IF EXISTS btree_gin CASCADE;"
      echo "DROP SCHEMA IF EXISTS temporal CASCADE; DROP SCHEMA IF EXISTS temporal_visibility CASCADE;"
      echo "DROP SCHEMA public CASCADE; CREATE SCHEMA public; GRANT ALL ON SCHEMA public TO PUBLIC;"
      cat "$sql"
      echo "CREATE TABLE IF NOT EXISTS msb_keep.msb_counter (service text PRIMARY KEY, n bigint NOT NULL);"
      echo "ALTER TABLE msb_keep.msb_counter OWNER TO maas;"
      echo "ALTER TABLE msb_keep.msb_counter SET SCHEMA public;"
      echo "DROP SCHEMA msb_keep;"
      [ "$extra" = - ] || echo "INSERT INTO public.django_migrations (app, name, applied) VALUES ('maasserver', '$extra', now());"
    } | pgm -1 -d "$db" >/dev/null
    echo "dbupgrade: database $db now at $(head_of_db)" ;;
  *) exit 0 ;;
esac
EOF
}

prog_maas_rack() {
  cat <<'EOF'
#!/bin/sh
# Stand-in maas-rack: `config` writes /etc/maas/rackd.conf when missing; the rest does nothing.
if [ "$1" = config ] && [ ! -f /etc/maas/rackd.conf ]; then
  printf 'maas_url: http://localhost:5240/MAAS\n' >/etc/maas/rackd.conf
fi
exit 0
EOF
}

# --- maintainer scripts -------------------------------------------------------------------------
script_head() {
  cat <<'EOF'
#!/bin/bash
set -e
command -v deb-systemd-invoke >/dev/null || deb-systemd-invoke() { systemctl "$@"; }
command -v deb-systemd-helper >/dev/null || deb-systemd-helper() { systemctl "$@"; }
EOF
}

# The deb-systemd lines of MAAS's own postinst (inside an if on a unit file, as written there).
systemd_lines_of() { # FILE
  [[ -f $1 ]] || return 0
  awk '
    /^[ \t]*if \[ -f \/lib\/systemd\/system\/.*\]; then/ { print; inif = 1; next }
    inif && /^[ \t]*fi[ \t]*$/ { print; inif = 0; next }
    /deb-systemd-(helper|invoke) .*'"'"'maas-[a-z0-9-]*\.service'"'"'/ { print }
  ' "$1"
}

# dh_installsystemd's part of the postinst/prerm/postrm for PACKAGE, from debian/rules.
dh_units() { # DEBIAN PACKAGE -> "unit nostart restart" lines
  grep -E "^[[:space:]]*dh_installsystemd .*-p $2( |$)" "$1/rules" | while read -r line; do
    local name nostart=0
    name=$(sed -n 's/.*--name=\([^ ]*\).*/\1/p' <<<"$line")
    [[ $line == *--no-start* ]] && nostart=1
    echo "$name $nostart"
  done
}

dh_postinst() { # DEBIAN PACKAGE
  local name nostart
  while read -r name nostart; do
    [[ -n $name ]] || continue
    cat <<EOF
# dh_installsystemd --name=$name$( ((nostart)) && echo " --no-start --restart-after-upgrade")
if [ "\$1" = configure ] || [ "\$1" = abort-upgrade ]; then
  systemctl --system daemon-reload >/dev/null || true
  deb-systemd-helper enable '$name.service' >/dev/null || true
EOF
    if ((nostart)); then
      echo "  if [ -n \"\$2\" ]; then deb-systemd-invoke try-restart '$name.service' >/dev/null || true; fi"
    else
      echo "  if [ -n \"\$2\" ]; then a=restart; else a=start; fi; deb-systemd-invoke \$a '$name.service' >/dev/null || true"
    fi
    echo "fi"
  done < <(dh_units "$1" "$2")
}

dh_prerm() {
  local name nostart
  while read -r name nostart; do
    [[ -n $name ]] && echo "if [ \"\$1\" = remove ]; then deb-systemd-invoke stop '$name.service' >/dev/null || true; fi"
  done < <(dh_units "$1" "$2")
}

dh_postrm() {
  local name nostart
  while read -r name nostart; do
    [[ -n $name ]] || continue
    echo "if [ \"\$1\" = remove ] || [ \"\$1\" = purge ]; then systemctl --system daemon-reload >/dev/null || true; fi"
    echo "if [ \"\$1\" = purge ]; then deb-systemd-helper purge '$name.service' >/dev/null || true; fi"
  done < <(dh_units "$1" "$2")
}

# What MAAS's own scripts do to this system, per package and script.
effects() { # DEBIAN PACKAGE SCRIPT
  local d=$1 p=$2 s=$3
  case $p.$s in
    *.preinst)
      if grep -q 'rm -rf /var/lib/maas/boot-resources' "$d/$p.preinst" 2>/dev/null; then
        echo 'if [ "$1" = install ] || [ "$1" = upgrade ]; then rm -rf /var/lib/maas/boot-resources; fi'
      fi ;;
    maas-common.postinst) cat <<'EOF'
getent group maas >/dev/null || groupadd --system maas
getent passwd maas >/dev/null || useradd --system --gid maas --home-dir /var/lib/maas --shell /usr/sbin/nologin maas
mkdir -p /var/log/maas /etc/maas/certificates /var/lib/maas/prometheus /var/lib/maas/certificates
touch /var/log/maas/maas.log; chown maas:maas /var/log/maas /var/log/maas/maas.log
chown maas:maas /etc/maas /var/lib/maas /var/lib/maas/prometheus /var/lib/maas/certificates
chown -R maas:maas /etc/maas/certificates
[ ! -d /var/lib/maas/http ] || chown -R maas:maas /var/lib/maas/http
EOF
      ;;
    maas-common.postrm) cat <<'EOF'
if [ "$1" = purge ]; then
  rm -f /var/lib/maas/secret /var/lib/maas/maas_id; rm -rf /var/lib/maas/certificates /var/lib/maas/http /etc/maas/certificates
  getent passwd maas >/dev/null && userdel maas || true
fi
EOF
      ;;
    maas-dhcp.postinst) echo 'if [ "$1" = configure ]; then install -d -o root -g dhcpd /var/lib/maas/dhcp; fi' ;;
    maas-dhcp.postrm) echo 'if [ "$1" = purge ]; then rm -rf /var/lib/maas/dhcp /run/maas-dhcp; fi' ;;
    maas-agent.postinst) echo 'if [ "$1" = configure ]; then install -d -o maas -g maas -m 0755 /var/cache/maas; chown maas:maas /var/cache/maas; fi' ;;
    maas-rack-controller.postinst) cat <<'EOF'
maas-rack config
chown maas:maas /etc/maas/rackd.conf
if [ "$1" = configure ]; then
  touch /var/log/maas/rackd.log; chown maas:maas /var/log/maas/rackd.log
  if [ -f /var/lib/maas/secret ]; then chown maas:maas /var/lib/maas/secret; chmod 0640 /var/lib/maas/secret; fi
  [ ! -f /var/lib/maas/dhcpd.conf ] || chown root:maas /var/lib/maas/dhcpd.conf
  [ ! -f /var/lib/maas/dhcpd-interfaces ] || chown root:maas /var/lib/maas/dhcpd-interfaces
fi
EOF
      ;;
    maas-rack-controller.postrm) echo 'if [ "$1" = purge ]; then rm -rf /var/lib/maas/boot-resources /var/lib/maas/dhcpd.conf /var/lib/maas/dhcpd-interfaces /etc/maas/rackd.conf /etc/maas/agent.yaml /run/maas; fi' ;;
    maas-region-api.postinst) cat <<'EOF'
maas-region local_config_set
chown maas:maas /etc/maas/regiond.conf
if [ "$1" = configure ]; then
  touch /var/log/maas/regiond.log; chown maas:maas /var/log/maas/regiond.log
  if [ -f /var/lib/maas/secret ]; then chown maas:maas /var/lib/maas/secret; chmod 0640 /var/lib/maas/secret; fi
  [ ! -d /var/lib/maas/temporal ] || chown maas:maas /var/lib/maas/temporal
  [ ! -d /var/lib/maas/image-storage ] || chown maas:maas /var/lib/maas/image-storage
fi
EOF
      ;;
    maas-region-controller.postinst) cat <<'EOF'
if [ "$1" = configure ]; then
  if [ -z "$2" ]; then
    # dbconfig-pgsql: the role and the database; then local_config_set and dbupgrade.
    runuser -u postgres -- psql -X -q -c "DO \$\$ BEGIN CREATE ROLE maas LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$" >/dev/null
    maas-region local_config_set --database-host localhost --database-port 5432 --database-name maasdb --database-user maas --database-pass standin
  fi
  maas-region dbupgrade
fi
EOF
      ;;
  esac
}

write_scripts() { # DEBIAN PACKAGE ROOT
  local d=$1 p=$2 root=$3 s body
  for s in preinst postinst prerm postrm; do
    body=$(effects "$d" "$p" "$s")
    case $s in
      postinst) body+=$'\n'$(systemd_lines_of "$d/$p.postinst")$'\n'$(dh_postinst "$d" "$p") ;;
      prerm) body+=$'\n'$(dh_prerm "$d" "$p") ;;
      postrm) body+=$'\n'$(dh_postrm "$d" "$p") ;;
    esac
    [[ -n ${body//[$'\n' ]/} ]] || continue
    { script_head; echo "$body"; echo "exit 0"; } >"$root/DEBIAN/$s"
    chmod 0755 "$root/DEBIAN/$s"
  done
}

put() { # ROOT PATH MODE < content
  install -D -m "$3" /dev/stdin "$1$2"
}

build_deb() { # ROOT
  local root=$1 name version a
  name=$(sed -n 's/^Package: //p' "$root/DEBIAN/control")
  version=$(sed -n 's/^Version: //p' "$root/DEBIAN/control")
  a=$(sed -n 's/^Architecture: //p' "$root/DEBIAN/control")
  (cd "$root" && { find etc -type f 2>/dev/null || true; } | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
  [[ -s $root/DEBIAN/conffiles ]] || rm -f "$root/DEBIAN/conffiles"
  local deb=$out/${name}_${version#*:}_$a.deb
  dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
  echo "$deb"
}

# --- the MAAS packages of one version -------------------------------------------------------------
externals=()
build_version() { # VERSION
  local v=$1 d=$packaging/$1/debian version upstream schema extra p
  [[ -f $d/control && -f $d/changelog ]] || { echo "build-standin-maas.sh: $d has no control or changelog" >&2; exit 1; }
  version=$(changelog_version "$d")
  upstream=${version#*:}; upstream=${upstream%%-*}
  case $upstream in
    3.4.*) schema=3.4.0 extra=- ;;
    3.5.*) schema=3.5.0 extra=- ;;
    *) schema=3.5.0 extra=9999_msb_standin_${upstream%.*}; extra=${extra//./_} ;;
  esac
  [[ -f $schemas/maas-$schema.sql ]] || { echo "build-standin-maas.sh: $schemas/maas-$schema.sql missing" >&2; exit 1; }
  local all; all=$(binary_packages "$d")
  for p in $all; do
    local root=$work/$v/$p a field val
    mkdir -p "$root/DEBIAN"
    a=$(control_field "$d" "$p" Architecture); [[ $a == all ]] || a=$arch
    {
      echo "Package: $p"
      echo "Version: $version"
      echo "Architecture: $a"
      echo "Maintainer: maas-snapshot-backup tests <tests@example.invalid>"
      for field in Pre-Depends Depends Conflicts Breaks Replaces Provides; do
        val=$(relations "$d" "$p" "$field" "$version")
        [[ -z $val ]] || echo "$field: $val"
      done
      echo "Section: net"
      echo "Priority: optional"
      echo "Description: stand-in $p $version (maas-snapshot-backup system tests)"
      echo " MAAS's own package relationships, unit files and maintainer-script effects;"
      echo " stand-in programs. Not MAAS."
    } >"$root/DEBIAN/control"
    # External dependencies, for msb-standin-maas-deps.
    local n
    for field in Pre-Depends Depends; do
      while read -r n; do
        [[ -n $n ]] || continue
        grep -qx "$n" <<<"$all" || externals+=("$n")
      done < <(relations "$d" "$p" "$field" "$version" | relation_names)
    done
    # Unit files, byte for byte.
    local f unit
    for f in "$d/$p".*.service; do
      [[ -f $f ]] || continue
      unit=${f#"$d/$p."}
      install -D -m 0644 "$f" "$root/lib/systemd/system/$unit"
    done
    # Folders and the extras MAAS installs (nginx.conf left out: maas-http would start nginx).
    if [[ -f $d/$p.dirs ]]; then
      while read -r f; do [[ -n $f && $f != \#* ]] && mkdir -p "$root/${f#/}"; done <"$d/$p.dirs"
    fi
    if [[ -f $d/$p.install ]]; then
      local src dst
      while read -r src dst; do
        [[ $src == debian/extras/* && -n $dst ]] || continue
        [[ $(basename "$src") == nginx.conf ]] && continue
        install -D -m 0644 "$packaging/$v/$src" "$root/${dst#/}/$(basename "$src")"
      done <"$d/$p.install"
      [[ ! -d $root/etc/sudoers.d ]] || chmod 0440 "$root"/etc/sudoers.d/*
    fi
    # The stand-in programs at the paths the units name.
    case $p in
      maas-region-api)
        prog_regiond | put "$root" /usr/sbin/regiond 0755
        prog_maas_region "$schema" "$extra" | put "$root" /usr/sbin/maas-region 0755
        install -D -m 0644 "$schemas/maas-$schema.sql" "$root/usr/share/maas/msb-standin/maas-$schema.sql"
        [[ ! -f $d/$p.maas-apiserver.service ]] || prog_counter maas-apiserver | put "$root" /usr/sbin/maas-apiserver 0755
        [[ ! -f $d/$p.maas-temporal-worker.service ]] || prog_counter maas-temporal-worker | put "$root" /usr/sbin/maas-temporal-worker 0755 ;;
      maas-rack-controller)
        prog_rackd | put "$root" /usr/sbin/rackd 0755
        prog_maas_rack | put "$root" /usr/sbin/maas-rack 0755 ;;
      maas-dhcp) printf '#!/bin/sh\n# Stand-in maas-dhcp-helper.\nexit 0\n' | put "$root" /usr/sbin/maas-dhcp-helper 0755 ;;
      maas-agent) prog_counter maas-agent | put "$root" /usr/sbin/maas-agent 0755 ;;
    esac
    write_scripts "$d" "$p" "$root"
    build_deb "$root"
  done
}

if ((!deps_only)); then
  for v in "$@"; do build_version "$v"; done
  printf '%s\n' "${externals[@]}" | sort -u >>"$out/externals"
  sort -u -o "$out/externals" "$out/externals"
  exit 0
fi

# --- everything outside MAAS ----------------------------------------------------------------------
root=$work/deps
mkdir -p "$root/DEBIAN"
provides=()
for n in $(sort -u "$out/externals"); do
  # Really installed here (postgresql, iproute2, ...): the real package answers.
  [[ $(dpkg-query -W -f '${Status}' "$n" 2>/dev/null) == "install ok installed" ]] && continue
  provides+=("$n (= 999:999)")
done
{
  echo "Package: msb-standin-maas-deps"
  echo "Version: 1.0"
  echo "Architecture: all"
  echo "Maintainer: maas-snapshot-backup tests <tests@example.invalid>"
  echo "Provides: $(IFS=,; echo "${provides[*]}" | sed 's/,/, /g')"
  echo "Section: misc"
  echo "Priority: optional"
  echo "Description: stand-ins for what MAAS depends on outside MAAS (system tests)"
  echo " Provides the packages; dhcpd and temporal-server are stand-in daemons."
} >"$root/DEBIAN/control"
install -D -m 0755 "$standin" "$root/usr/lib/msb-standin/maasd"
common_sh | put "$root" /usr/lib/msb-standin/common.sh 0644
prog_dhcpd | put "$root" /usr/sbin/dhcpd 0755
prog_counter maas-temporal | put "$root" /usr/sbin/temporal-server 0755
cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
# isc-dhcp-server's user; the stand-ins' runtime folder.
getent group dhcpd >/dev/null || groupadd --system dhcpd
getent passwd dhcpd >/dev/null || useradd --system --gid dhcpd --home-dir /var/lib/dhcp --shell /usr/sbin/nologin dhcpd
install -d -m 1777 /run/msb-standin
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst"
build_deb "$root"
