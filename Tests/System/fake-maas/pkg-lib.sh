# Helpers for the package scenarios (scenarios/pkg-*.sh), inside the guest, sourced after lib.sh:
#   source "$MSB_LIB"; source "$MSB_IN/fake-maas/pkg-lib.sh"
# Needs the package (run-vm-tests.sh --deb out/maas-snapshot-backup_*.deb) and fake-maas/ in the
# VM input. Builds the stand-in MAAS packages (build-fake-maas.sh) and serves them from a flat
# local apt repository (file:), the only source apt reads in these scenarios (no network).

MSB_FAKE_DEBS=/var/tmp/msb-fake-debs
MSB_REPO=/var/tmp/msb-repo
MSB_DEST=/var/backups/maas-snapshot-backup
# apt reads only the local repository; conffile questions keep the local file.
MSB_APT=(apt-get -y -q -o Dir::Etc::sourcelist=sources.list.d/msb-fake.list -o Dir::Etc::sourceparts=-
         -o APT::Get::List-Cleanup=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
MSB_PKG_DEB=

msb_pkg_setup() {
  MSB_PKG_DEB=$(compgen -G "$MSB_IN/deb/maas-snapshot-backup_*.deb" | head -n1 || true)
  [[ -n $MSB_PKG_DEB ]] || msb_skip "needs the package: run-vm-tests.sh --deb out/maas-snapshot-backup_VERSION_amd64.deb"
  [[ -f $MSB_IN/fake-maas/build-fake-maas.sh ]] ||
    msb_skip "the VM input has no fake-maas/ folder (run-vm-tests.sh must copy Tests/System/fake-maas)"
  rm -rf "$MSB_FAKE_DEBS" "$MSB_REPO"
  bash "$MSB_IN/fake-maas/build-fake-maas.sh" "$MSB_FAKE_DEBS" "$MSB_FIXTURES" >/dev/null
  mkdir -p "$MSB_REPO"
  echo "deb [trusted=yes] file:$MSB_REPO ./" >/etc/apt/sources.list.d/msb-fake.list
  msb_defer "rm -rf $MSB_REPO $MSB_FAKE_DEBS /etc/apt/sources.list.d/msb-fake.list"
  msb_repo_publish
}

# The stand-in .deb of PACKAGE at upstream VERSION (3.4.0, 3.5.0, 3.6.0).
msb_fake_deb() { echo "$MSB_FAKE_DEBS/${1}_${2}-0msb1_all.deb"; }

# Makes exactly the given .debs available in the local repository and runs apt-get update.
msb_repo_publish() { # DEB...
  rm -f "$MSB_REPO"/*.deb
  local deb
  for deb in "$@"; do cp "$deb" "$MSB_REPO/"; done
  : >"$MSB_REPO/Packages"
  for deb in "$MSB_REPO"/*.deb; do
    [[ -f $deb ]] || continue
    {
      dpkg-deb -f "$deb"
      echo "Filename: ./$(basename "$deb")"
      echo "Size: $(stat -c %s "$deb")"
      echo "SHA256: $(sha256sum "$deb" | cut -c1-64)"
      echo
    } >>"$MSB_REPO/Packages"
  done
  "${MSB_APT[@]}" update >/dev/null
}

# Runs apt-get with ARGS, keeping its exit code in MSB_RC and its output in $MSB_RESULTS/apt.log.
msb_apt() {
  msb_log "apt-get $*"
  set +e
  "${MSB_APT[@]}" "$@" >"$MSB_RESULTS/apt.log" 2>&1
  MSB_RC=$?
  set -e
  sed 's/^/  apt| /' "$MSB_RESULTS/apt.log" | tail -n 25
}

# Runs dpkg with ARGS the same way.
msb_dpkg() {
  msb_log "dpkg $*"
  set +e
  dpkg --force-confdef --force-confold "$@" >"$MSB_RESULTS/dpkg.log" 2>&1
  MSB_RC=$?
  set -e
  sed 's/^/  dpkg| /' "$MSB_RESULTS/dpkg.log" | tail -n 25
}

# Installs this tool from the .deb under test (again).
msb_pkg_install_tool() {
  msb_apt install "$MSB_PKG_DEB"
  msb_assert_eq 0 "$MSB_RC" "apt-get install of $(basename "$MSB_PKG_DEB")"
}

# dpkg's status of PACKAGE ("install ok installed", "deinstall ok config-files", ...), or "absent".
msb_pkg_status() { dpkg-query -W -f '${Status}' "$1" 2>/dev/null || echo absent; }
msb_pkg_version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo absent; }

# The archives in the destination, oldest first.
msb_archives() { ls -1tr "$MSB_DEST"/maas-backup-*.tar.gz 2>/dev/null || true; }
msb_archive_count() { msb_archives | wc -l; }
msb_archive_reason() { jq -r .reason "$1.manifest.json"; }

# The tool's configuration for the stand-in region: its one service, the local database.
msb_pkg_write_config() {
  mkdir -p /etc/maas-snapshot-backup
  {
    printf 'services:\n  - maas-regiond\n'
    printf 'database:\n  name: maasdb\n  os_user: postgres\n'
    # Stopped, so the counters agree exactly (this stand-in writes the file before psql commits).
    printf 'quiesce: stop\n'
    [[ -t 0 ]] || cat
  } >/etc/maas-snapshot-backup/config.yaml
}

# Puts the shipped config.yaml back.
msb_pkg_restore_config() {
  dpkg-deb --fsys-tarfile "$MSB_PKG_DEB" | tar -xO ./etc/maas-snapshot-backup/config.yaml >/etc/maas-snapshot-backup/config.yaml
}

# Removes the stand-in MAAS packages and their database without any hook taking a backup.
msb_pkg_remove_fake_maas() {
  MAAS_SNAPSHOT_BACKUP_SKIP=1 dpkg --purge --force-all maas-region-controller maas-cli >/dev/null 2>&1 || true
  systemctl stop maas-regiond.service 2>/dev/null || true
  rm -rf /etc/maas /var/lib/maas
  msb_psql -c "DROP DATABASE IF EXISTS maasdb" >/dev/null 2>&1 || true
}

# The value of the stand-in schema version in the live database, or in a dump.sql.
msb_live_schema() { msb_sql "select version from msb_fake_schema"; }
msb_dump_schema() { # DUMP.SQL
  awk '/^COPY (public\.)?msb_fake_schema / { c = 1; next } c && /^\\\.$/ { c = 0 } c { print $1 }' "$1"
}

# Extracts ARCHIVE's dump.sql to stdout.
msb_archive_dump() { tar -xzOf "$1" dump.sql; }
