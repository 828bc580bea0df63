#!/bin/bash
# The hooks at work on a stand-in MAAS region (maas-region-controller with a real systemd unit and
# database): a fresh install takes no backup; apt upgrading 3.4.0 -> 3.5.0 takes one first, which
# holds the database as it was before the upgrade's migration; a reinstall takes none; dpkg run by
# hand downgrading takes one; a failing backup blocks the upgrade (hook.on_failure: block) or not
# (warn); removing MAAS takes one.
# msb-needs: binary
# msb-timeout: 1500
# msb-cost: 422
source "$MSB_LIB"
source "$MSB_IN/fake-maas/pkg-lib.sh"

msb_pkg_setup
msb_pkg_install_tool
msb_pkg_remove_fake_maas
msb_defer msb_pkg_remove_fake_maas
msb_defer "rm -rf $MSB_DEST /var/lib/maas-snapshot-backup"
msb_defer msb_pkg_restore_config
msb_pg_up
rm -rf "$MSB_DEST"
msb_pkg_write_config </dev/null
v1=$(msb_fake_deb maas-region-controller 3.4.0)
v2=$(msb_fake_deb maas-region-controller 3.5.0)

# --- fresh install: nothing to lose -----------------------------------------------------------------
msb_repo_publish "$v1"
msb_apt install maas-region-controller
msb_assert_eq 0 "$MSB_RC" "fresh install of maas-region-controller 3.4.0"
msb_wait_active maas-regiond.service 120
msb_assert_eq 3.4.0 "$(msb_live_schema)" "schema after install"
msb_assert_eq 0 "$(msb_archive_count)" "archives after a fresh install"
sleep 2

# --- apt upgrade: a backup first, of the state before the upgrade ----------------------------------
msb_repo_publish "$v1" "$v2"
msb_apt install maas-region-controller
msb_assert_eq 0 "$MSB_RC" "apt-get upgrade to 3.5.0"
msb_assert_eq 1:3.5.0-0msb1 "$(msb_pkg_version maas-region-controller)" "installed version"
msb_assert_eq 3.5.0 "$(msb_live_schema)" "live schema after the upgrade's migration"
msb_wait_active maas-regiond.service 120
msb_assert_eq 1 "$(msb_archive_count)" "archives after the upgrade"
a1=$(msb_archives | tail -n1)
msb_assert_eq "pre-upgrade maas-region-controller 1:3.4.0-0msb1 -> 1:3.5.0-0msb1" "$(msb_archive_reason "$a1")" "reason"
msb_archive_dump "$a1" >/var/tmp/msb-dump.sql
msb_assert_eq 3.4.0 "$(msb_dump_schema /var/tmp/msb-dump.sql)" "schema in the pre-upgrade backup"
dbn=$(msb_dump_counter /var/tmp/msb-dump.sql maas-regiond)
filen=$(tar -xzOf "$a1" var/lib/maas/maas-regiond.counter)
msb_assert_eq "$dbn" "$filen" "pre-upgrade backup: database counter vs file counter"
grep -q "backing up MAAS first" "$MSB_RESULTS/apt.log" || msb_fail "apt's output does not say a backup was taken"
# The .deb of the version it replaced is kept beside the backup (apt read it from a file: repository,
# so it is not in apt's cache: rebuilt by dpkg-repack).
compgen -G "${a1%.tar.gz}.debs/maas-region-controller_*3.4.0*.deb" >/dev/null ||
  msb_fail "no saved maas-region-controller 3.4.0 .deb beside $a1"

# --- reinstall of the same version: none ------------------------------------------------------------
msb_apt install --reinstall maas-region-controller
msb_assert_eq 0 "$MSB_RC" "reinstall"
msb_assert_eq 1 "$(msb_archive_count)" "archives after a reinstall"

# --- an unrelated package upgraded: no backup -------------------------------------------------------
unrelated_deb() { # VERSION
  local d; d=$(mktemp -d)
  mkdir -p "$d/DEBIAN"
  printf 'Package: msb-unrelated\nVersion: %s\nArchitecture: all\nMaintainer: Test <test@example.com>\nDescription: not MAAS\n' "$1" >"$d/DEBIAN/control"
  dpkg-deb -b "$d" "/var/tmp/msb-unrelated_$1_all.deb" >/dev/null
  rm -rf "$d"
  echo "/var/tmp/msb-unrelated_$1_all.deb"
}
u1=$(unrelated_deb 1.0) u2=$(unrelated_deb 2.0)
msb_defer "dpkg --purge msb-unrelated >/dev/null 2>&1; rm -f $u1 $u2"
msb_repo_publish "$v2" "$u1"
msb_apt install msb-unrelated
msb_assert_eq 0 "$MSB_RC" "install of an unrelated package"
msb_repo_publish "$v2" "$u2"
t0=$EPOCHREALTIME
msb_apt install msb-unrelated
t1=$EPOCHREALTIME
msb_assert_eq 0 "$MSB_RC" "upgrade of an unrelated package"
msb_assert_eq 2.0 "$(msb_pkg_version msb-unrelated)" "unrelated package version"
msb_assert_eq 1 "$(msb_archive_count)" "archives after an unrelated upgrade"
unrelated_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
msb_log "the unrelated upgrade took ${unrelated_s} s in the VM (apt and dpkg included)"
msb_repo_publish "$v1" "$v2"

# --- dpkg by hand, downgrading: the dpkg hook takes one ----------------------------------------------
msb_dpkg -i "$v1"
msb_assert_eq 0 "$MSB_RC" "dpkg -i 3.4.0 (downgrade)"
msb_assert_eq 2 "$(msb_archive_count)" "archives after dpkg -i"
msb_assert_eq "pre-upgrade maas-region-controller 1:3.5.0-0msb1 -> 1:3.4.0-0msb1" "$(msb_archive_reason "$(msb_archives | tail -n1)")" "reason (dpkg)"

# --- the backup fails: block, then warn ------------------------------------------------------------
msb_pkg_write_config <<'EOF'
destination: /proc/msb-cannot-write-here
EOF
msb_apt install maas-region-controller
[[ $MSB_RC != 0 ]] || msb_fail "the upgrade went on although its backup failed (on_failure block)"
msb_assert_eq 1:3.4.0-0msb1 "$(msb_pkg_version maas-region-controller)" "version after the blocked upgrade"
msb_assert_eq "install ok installed" "$(msb_pkg_status maas-region-controller)" "status after the blocked upgrade"
grep -q "package change is stopped" "$MSB_RESULTS/apt.log" || msb_fail "apt's output does not say why it stopped"
grep -q "MAAS_SNAPSHOT_BACKUP_SKIP=1" "$MSB_RESULTS/apt.log" || msb_fail "apt's output does not say how to skip the backup"
# MAAS_SNAPSHOT_BACKUP_SKIP=1: the same upgrade goes on, without a backup.
MAAS_SNAPSHOT_BACKUP_SKIP=1 msb_apt install maas-region-controller
msb_assert_eq 0 "$MSB_RC" "upgrade with MAAS_SNAPSHOT_BACKUP_SKIP=1"
msb_assert_eq 1:3.5.0-0msb1 "$(msb_pkg_version maas-region-controller)" "version after the skipped backup"
msb_assert_eq 2 "$(msb_archive_count)" "archives after the skipped backup"
MAAS_SNAPSHOT_BACKUP_SKIP=1 msb_dpkg -i "$v1"
msb_assert_eq 0 "$MSB_RC" "dpkg -i 3.4.0 with MAAS_SNAPSHOT_BACKUP_SKIP=1"
msb_assert_eq 2 "$(msb_archive_count)" "archives after the skipped dpkg backup"
msb_wait_active maas-regiond.service 120
msb_pkg_write_config <<'EOF'
destination: /proc/msb-cannot-write-here
hook:
  on_failure: warn
EOF
msb_apt install maas-region-controller
msb_assert_eq 0 "$MSB_RC" "upgrade with a failing backup and on_failure warn"
msb_assert_eq 1:3.5.0-0msb1 "$(msb_pkg_version maas-region-controller)" "version after the warned upgrade"
msb_assert_eq 2 "$(msb_archive_count)" "archives (none for the warned upgrade)"
msb_pkg_write_config </dev/null

# --- the daily unit, as its timer starts it: hardened, priorities in the journal, the failure hook ---
# (The VM booted minutes ago: a drop-in leaves out the unit's --after-boot wait.)
mkdir -p /etc/systemd/system/maas-snapshot-backup.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/sbin/maas-snapshot-backup --reason scheduled\n' \
  >/etc/systemd/system/maas-snapshot-backup.service.d/msb-test.conf
msb_defer "rm -rf /etc/systemd/system/maas-snapshot-backup.service.d /etc/maas-snapshot-backup/on-failure /var/tmp/msb-on-failure; systemctl daemon-reload; systemctl reset-failed maas-snapshot-backup.service 2>/dev/null || true"
systemctl daemon-reload
msb_wait_active maas-regiond.service 120
since0=$(date '+%Y-%m-%d %H:%M:%S')
systemctl start maas-snapshot-backup.service ||
  msb_fail "the daily unit failed: $(journalctl -u maas-snapshot-backup -n 20 --no-pager -o cat | tr '\n' ' ')"
msb_assert_eq 3 "$(msb_archive_count)" "archives after the daily unit"
msb_assert_eq scheduled "$(msb_archive_reason "$(msb_archives | tail -n1)")" "reason (daily unit)"
exposure=$(systemd-analyze security maas-snapshot-backup.service --no-pager 2>/dev/null |
  sed -n 's/.*Overall exposure level for maas-snapshot-backup.service: \([0-9.]*\).*/\1/p')
msb_log "systemd-analyze security maas-snapshot-backup.service: exposure ${exposure:-?}"
# A failed run: its error is in the journal at priority err, and OnFailure= runs the admin's hook.
printf '#!/bin/sh\necho "$1" >/var/tmp/msb-on-failure\n' >/etc/maas-snapshot-backup/on-failure
chmod 755 /etc/maas-snapshot-backup/on-failure
rm -f /var/tmp/msb-on-failure
msb_pkg_write_config <<'EOF'
destination: /proc/msb-cannot-write-here
EOF
since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl start maas-snapshot-backup.service && msb_fail "the daily unit succeeded with an unwritable destination"
for _ in $(seq 90); do [[ -s /var/tmp/msb-on-failure ]] && break; sleep 1; done
msb_assert_eq maas-snapshot-backup.service "$(cat /var/tmp/msb-on-failure 2>/dev/null)" "the OnFailure= hook's argument"
# (The line reaches the journal as "<3>maas-snapshot-backup: error: ..."; journald takes the <3> as its priority.)
journalctl -u maas-snapshot-backup -p err --since "$since" --no-pager -o cat | grep -q "^maas-snapshot-backup: error: " ||
  msb_fail "journalctl -p err -u maas-snapshot-backup does not show the failure: $(journalctl -u maas-snapshot-backup --since "$since" --no-pager -o cat | tail -n 3 | tr '\n' ' ')"
# Progress lines are info: in the journal, not under -p err.
journalctl -u maas-snapshot-backup --since "$since0" --no-pager -o cat | grep -q "^preflight passed" ||
  msb_fail "the daily unit's progress lines are not in the journal"
journalctl -u maas-snapshot-backup -p err --since "$since0" --no-pager -o cat | grep -q "preflight passed" &&
  msb_fail "journalctl -p err shows progress lines too"
# The alert unit wrote one line at priority alert, with no script needed.
for _ in $(seq 30); do journalctl -t maas-snapshot-backup -p alert --since "$since" --no-pager -o cat | grep -q "maas-snapshot-backup.service failed" && break; sleep 1; done
journalctl -t maas-snapshot-backup -p alert --since "$since" --no-pager -o cat | grep -q "maas-snapshot-backup.service failed" ||
  msb_fail "no alert-priority line in the journal for the failed run"
# A script that is there but not executable is skipped: no second failed unit.
chmod 644 /etc/maas-snapshot-backup/on-failure
rm -f /var/tmp/msb-on-failure
systemctl reset-failed 'maas-snapshot-backup*' 2>/dev/null || true
systemctl start maas-snapshot-backup.service && msb_fail "the daily unit succeeded with an unwritable destination (second run)"
sleep 5
[[ ! -e /var/tmp/msb-on-failure ]] || msb_fail "a 0644 on-failure script was run"
msb_assert_eq "" "$(systemctl list-units --failed --plain --no-legend 'maas-snapshot-backup-*' 2>/dev/null | awk '{print $1}')" "failed failure/alert units"
systemctl reset-failed 'maas-snapshot-backup*' 2>/dev/null || true
msb_pkg_write_config </dev/null

# --- removing MAAS: one more --------------------------------------------------------------------------
msb_wait_active maas-regiond.service 120
msb_apt remove maas-region-controller
msb_assert_eq 0 "$MSB_RC" "apt-get remove maas-region-controller"
msb_assert_eq 4 "$(msb_archive_count)" "archives after the removal"
msb_assert_eq "pre-upgrade maas-region-controller 1:3.5.0-0msb1 -> removed" "$(msb_archive_reason "$(msb_archives | tail -n1)")" "reason (remove)"
msb_summary "fresh install 0, upgrade 1 (with saved .deb), reinstall 0, unrelated upgrade 0 (${unrelated_s} s), dpkg downgrade 1, blocked/skipped/warned 0, daily unit 1 (exposure ${exposure:-?}, failure hook ran), remove 1 backups"
