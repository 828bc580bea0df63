# Helpers for the scenarios on stand-in MAAS packages built from MAAS's own debian/ folders
# (scenarios/pkg-4*.sh ...), inside the guest, sourced after lib.sh and fake-maas/pkg-lib.sh:
#   source "$MSB_LIB"; source "$MSB_IN/fake-maas/pkg-lib.sh"; source "$MSB_IN/maas-packaging/standin-lib.sh"
# The packages: maas-packaging/build-standin-maas.sh, from $MSB_FIXTURES/maas-packaging/<version>.
# The tool: the .deb of the run when there is one (its apt and dpkg hooks), else the binary the
# runner installed, with the same apt hook configuration pointing at it.

MSB_SDEBS=/var/tmp/msb-standin-debs
MSB_STANDIN_UNITS=(maas-regiond maas-apiserver maas-temporal maas-temporal-worker maas-rackd maas-agent
                   maas-dhcpd maas-dhcpd6 maas-http maas-proxy maas-syslog)

msb_standin_setup() { # VERSION...
  local v
  for v in "$@"; do
    [[ -f $MSB_FIXTURES/maas-packaging/$v/debian/control ]] ||
      msb_skip "MAAS packaging fixtures absent ($MSB_FIXTURES/maas-packaging/$v: ../shared/fixtures/maas-packaging)"
  done
  [[ -f $MSB_FIXTURES/maas-3.4.0.sql && -f $MSB_FIXTURES/maas-3.5.0.sql ]] || msb_skip "MAAS schema fixtures absent"
  MSB_PKG_DEB=$(compgen -G "$MSB_IN/deb/maas-snapshot-backup_*.deb" | head -n1 || true)
  rm -rf "$MSB_SDEBS" "$MSB_REPO"
  mkdir -p "$MSB_REPO"
  echo "deb [trusted=yes] file:$MSB_REPO ./" >/etc/apt/sources.list.d/msb-fake.list
  msb_defer "rm -rf $MSB_REPO $MSB_SDEBS /etc/apt/sources.list.d/msb-fake.list"
  if [[ -n $MSB_PKG_DEB ]]; then
    msb_pkg_install_tool
    msb_defer msb_pkg_restore_config
  else
    command -v maas-snapshot-backup >/dev/null || msb_skip "needs --binary or --deb"
    # The package's apt hook, pointing at the binary.
    mkdir -p /etc/maas-snapshot-backup
    printf '#!/bin/sh\nexec maas-snapshot-backup apt-hook\n' >/usr/local/sbin/msb-apt-hook
    chmod 0755 /usr/local/sbin/msb-apt-hook
    cat >/etc/apt/apt.conf.d/80msb-standin-hook <<'EOF'
DPkg::Pre-Install-Pkgs { "/usr/local/sbin/msb-apt-hook"; };
DPkg::Tools::Options::/usr/local/sbin/msb-apt-hook::Version "3";
DPkg::Tools::Options::/usr/local/sbin/msb-apt-hook::InfoFD "20";
EOF
    msb_defer "rm -f /etc/apt/apt.conf.d/80msb-standin-hook /usr/local/sbin/msb-apt-hook /etc/maas-snapshot-backup/config.yaml"
  fi
  msb_defer msb_standin_remove
  msb_defer "rm -rf $MSB_DEST /var/lib/maas-snapshot-backup"
  local t0=$SECONDS
  if [[ -f $MSB_IN/standin-debs/externals ]]; then
    # Built on the host by run-vm-tests.sh; only the deps package here.
    mkdir -p "$MSB_SDEBS"; cp "$MSB_IN"/standin-debs/* "$MSB_SDEBS/"
    bash "$MSB_IN/maas-packaging/build-standin-maas.sh" --deps "$MSB_SDEBS" >/dev/null
    ls "$MSB_SDEBS"/*.deb >"$MSB_RESULTS/standin-debs"
  else
    bash "$MSB_IN/maas-packaging/build-standin-maas.sh" "$MSB_SDEBS" "$MSB_FIXTURES/maas-packaging" "$MSB_FIXTURES" "$@" >"$MSB_RESULTS/standin-debs"
    bash "$MSB_IN/maas-packaging/build-standin-maas.sh" --deps "$MSB_SDEBS" >>"$MSB_RESULTS/standin-debs"
  fi
  msb_log "built $(wc -l <"$MSB_RESULTS/standin-debs") stand-in packages from MAAS's debian/ of $* in $((SECONDS - t0)) s"
  install -d -m 1777 /run/msb-standin
  printf 'MSB_REGION_SERVE_DELAY=%s\n' "${MSB_REGION_SERVE_DELAY:-40}" >/run/msb-standin/env
  msb_pg_up
}

# Makes the stand-in packages of the given versions (and the deps package) the repository's.
msb_standin_publish() { # VERSION...
  local debs=() v
  debs+=("$MSB_SDEBS"/msb-standin-maas-deps_*.deb)
  for v in "$@"; do debs+=("$MSB_SDEBS"/*_"$v"-*.deb); done
  msb_repo_publish "${debs[@]}"
}

# Everything the stand-in MAAS left: packages purged (no hook backup), units, database, folders.
msb_standin_remove() {
  local pkgs
  pkgs=$(dpkg-query -W -f '${Package}\n' 'maas*' 'python3-maas*' python3-django-maas msb-standin-maas-deps 2>/dev/null | grep -v '^maas-snapshot-backup' || true)
  systemctl stop "${MSB_STANDIN_UNITS[@]}" 2>/dev/null || true
  [[ -z $pkgs ]] || MAAS_SNAPSHOT_BACKUP_SKIP=1 dpkg --purge --force-all $pkgs >/dev/null 2>&1 || true
  systemctl stop "${MSB_STANDIN_UNITS[@]}" 2>/dev/null || true
  systemctl reset-failed 2>/dev/null || true
  rm -rf /etc/maas /var/lib/maas/* /run/msb-standin /run/maas /var/log/maas
  msb_psql -c "DROP DATABASE IF EXISTS maasdb" >/dev/null 2>&1 || true
}

# The tool's configuration for the stand-in region: the default services, the local database.
msb_standin_config() { # QUIESCE
  mkdir -p /etc/maas-snapshot-backup
  printf 'database:\n  name: maasdb\n  os_user: postgres\nquiesce: %s\n' "$1" >/etc/maas-snapshot-backup/config.yaml
}

# "unit ActiveState" of every MAAS unit known to systemd (not-found ones left out).
msb_standin_unit_states() {
  local u load
  for u in "${MSB_STANDIN_UNITS[@]}"; do
    load=$(systemctl show -p LoadState --value "$u.service")
    [[ $load == loaded ]] && echo "$u $(systemctl show -p ActiveState --value "$u.service")"
  done
}

# The MAAS packages installed: "name version" lines.
msb_standin_packages() {
  dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\n' 'maas*' 'python3-maas*' python3-django-maas 2>/dev/null |
    awk '$1 ~ /^.i/ && $2 !~ /^maas-snapshot-backup/ { print $2, $3 }' | sort
}

# Waits until UNIT is active (the region serves MSB_REGION_SERVE_DELAY s after its start, then
# rackd restarts maas-dhcpd): the limit is scaled for TCG.
msb_standin_wait_active() { # UNIT [SECONDS]
  local t0=$SECONDS
  msb_wait_active "$1" "${2:-$(( ${MSB_REGION_SERVE_DELAY:-40} * 3 + 180 ))}"
  msb_log "$1 active after $((SECONDS - t0)) s"
}

# Waits until MAAS has settled after a start: the region serves, rackd has written dhcpd.conf again
# (its ExecStartPre deleted it) and maas-dhcpd is active.
msb_standin_settled() { # [SECONDS]
  local t0=$SECONDS limit=${1:-$(( ${MSB_REGION_SERVE_DELAY:-40} * 3 + 180 ))} pid
  while :; do
    pid=$(cat /run/msb-standin/region-serving 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ -f /var/lib/maas/dhcpd.conf ]] &&
       systemctl is-active --quiet maas-dhcpd.service; then
      break
    fi
    ((SECONDS - t0 < limit)) || { systemctl status --no-pager 'maas-*' || true; msb_fail "MAAS did not settle (region serving, dhcpd.conf, maas-dhcpd active) within ${limit} s"; }
    sleep 1
  done
  msb_log "MAAS settled (region serves, maas-dhcpd active) after $((SECONDS - t0)) s"
}

msb_standin_schema_head() {
  msb_sql "select name from django_migrations where app = 'maasserver' order by id desc limit 1"
}

# The MAAS files to compare: /etc/maas and /var/lib/maas without the counters, logs and what the
# tool leaves out (boot-resources) or keeps of its own (.maas-snapshot-backup: the pre-restore copy).
msb_standin_tree() {
  msb_tree_listing /etc/maas /var/lib/maas | grep -v -e '\.counter ' -e '^var/lib/maas/boot-resources' -e '^var/lib/maas/lost+found' -e '^var/lib/maas/.maas-snapshot-backup' -e '^etc/maas/.maas-snapshot-backup' || true
}

# --- the pause regiond feels: the longest gap between its counter writes ---------------------------
msb_pause_start() {
  local f=/var/lib/maas/maas-regiond.counter
  (
    exec 7<> <(:)
    last=
    while :; do
      n=
      read -r n <"$f" 2>/dev/null || true
      if [[ -n $n && $n != "$last" ]]; then echo "$EPOCHREALTIME $n"; last=$n; fi
      read -r -t 0.01 -u 7 _ || true
    done
  ) >"$MSB_RESULTS/regiond-writes" 2>/dev/null &
  MSB_PAUSE_PID=$!
  msb_defer "kill $MSB_PAUSE_PID 2>/dev/null || true"
}
# Stops the sampler; sets MSB_PAUSE_MS (the longest gap while it ran, in ms).
msb_pause_stop() {
  kill "$MSB_PAUSE_PID" 2>/dev/null || true
  wait "$MSB_PAUSE_PID" 2>/dev/null || true
  MSB_PAUSE_MS=$(awk 'NR > 1 { g = ($1 - prev) * 1000; if (g > max) max = g } { prev = $1 } END { printf "%d", max }' "$MSB_RESULTS/regiond-writes")
}

# Runs the tool: msb_tool NAME ARGS... ; output in $MSB_RESULTS/NAME.{json,stderr}, exit code in MSB_RC.
msb_tool() {
  local name=$1 t0=$SECONDS; shift
  set +e
  maas-snapshot-backup "$@" >"$MSB_RESULTS/$name.json" 2>"$MSB_RESULTS/$name.stderr"
  MSB_RC=$?
  set -e
  msb_log "maas-snapshot-backup $* -> exit $MSB_RC in $((SECONDS - t0)) s"
  sed "s/^/  $name| /" "$MSB_RESULTS/$name.stderr" | tail -n 30
}
