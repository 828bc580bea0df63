#!/bin/bash
# The package's life cycle: install, remove (conffiles stay, the hooks must keep apt and dpkg
# working with the program gone), reinstall (local changes kept), purge (configuration, hooks and
# state gone, backups kept), install again. No MAAS upgrade here: no backup may be taken.
# msb-needs: binary
# msb-timeout: 1800
# msb-cost: 195
source "$MSB_LIB"
source "$MSB_IN/fake-maas/pkg-lib.sh"

msb_pkg_setup
msb_pkg_remove_fake_maas
msb_defer msb_pkg_remove_fake_maas
msb_repo_publish "$(msb_fake_deb maas-cli 3.4.0)"
rm -rf "$MSB_DEST"

conffiles=(
  /etc/maas-snapshot-backup/config.yaml
  /etc/maas-snapshot-backup/hooks/apt-pre-install-pkgs
  /etc/maas-snapshot-backup/hooks/dpkg-pre-invoke
  /etc/apt/apt.conf.d/80maas-snapshot-backup
  /etc/dpkg/dpkg.cfg.d/maas-snapshot-backup
)

# --- installed -----------------------------------------------------------------------------------
msb_pkg_install_tool
msb_assert_eq "install ok installed" "$(msb_pkg_status maas-snapshot-backup)" "package status"
[[ -x /usr/sbin/maas-snapshot-backup ]] || msb_fail "/usr/sbin/maas-snapshot-backup missing"
maas-snapshot-backup --help >/dev/null || msb_fail "maas-snapshot-backup --help failed"
if ldd /usr/sbin/maas-snapshot-backup | grep -E 'libswift|libFoundation|lib_Foundation|libdispatch'; then
  msb_fail "the binary needs Swift runtime libraries"
fi
listed=$(dpkg-query -W -f '${Conffiles}\n' maas-snapshot-backup | awk 'NF { print $1 }' | sort)
for f in "${conffiles[@]}"; do
  grep -qx "$f" <<<"$listed" || msb_fail "$f is not a conffile (conffiles: $listed)"
  [[ -f $f ]] || msb_fail "$f missing"
done
msb_log "ok: ${#conffiles[@]} conffiles"
for f in /etc/maas-snapshot-backup/hooks/*; do [[ -x $f ]] || msb_fail "$f not executable"; done
apt-config dump | grep -qx 'DPkg::Tools::Options::/etc/maas-snapshot-backup/hooks/apt-pre-install-pkgs::Version "3";' ||
  msb_fail "apt does not see the hook's protocol version 3"
apt-config dump | grep -qx 'DPkg::Tools::Options::/etc/maas-snapshot-backup/hooks/apt-pre-install-pkgs::InfoFD "20";' ||
  msb_fail "apt does not see the hook's InfoFD"
msb_assert_eq disabled "$(systemctl is-enabled maas-snapshot-backup.timer 2>&1 || true)" "timer enabled state"
msb_assert_eq inactive "$(systemctl is-active maas-snapshot-backup.timer 2>&1 || true)" "timer state"
msb_assert_eq inactive "$(systemctl is-active maas-snapshot-backup.service 2>&1 || true)" "service state"
msb_assert_eq disabled "$(systemctl is-enabled maas-snapshot-backup-verify.timer 2>&1 || true)" "verify timer enabled state"
msb_assert_eq "verify latest --deep --with-remote" "$(systemctl show -P ExecStart maas-snapshot-backup-verify.service | sed -n 's/.*argv\[\]=[^ ]* \([^;]*\) ;.*/\1/p')" "what the weekly verify runs"
systemd-analyze verify --man=no /lib/systemd/system/maas-snapshot-backup.service /lib/systemd/system/maas-snapshot-backup.timer \
  /lib/systemd/system/maas-snapshot-backup-verify.service /lib/systemd/system/maas-snapshot-backup-verify.timer ||
  msb_fail "systemd-analyze verify rejects the units"
# Generated at build time from the command line's definitions: the man page and three completions.
for f in /usr/share/bash-completion/completions/maas-snapshot-backup /usr/share/zsh/vendor-completions/_maas-snapshot-backup \
  /usr/share/fish/vendor_completions.d/maas-snapshot-backup.fish /lib/systemd/system/maas-snapshot-backup-failure@.service \
  /lib/systemd/system/maas-snapshot-backup-alert@.service; do
  [[ -s $f ]] || msb_fail "$f missing"
done
# (The test image leaves /usr/share/man out when installing: the man page is checked in the .deb.)
dpkg-deb --fsys-tarfile "$MSB_PKG_DEB" | tar -xO ./usr/share/man/man8/maas-snapshot-backup.8.gz | zcat | grep "Fl -after-boot" >/dev/null ||
  msb_fail "the package's man page is missing or does not document --after-boot"
grep -q -- "--after-boot" /usr/share/bash-completion/completions/maas-snapshot-backup || msb_fail "bash completion lacks --after-boot"
dpkg-deb --fsys-tarfile "$MSB_PKG_DEB" | tar -xO ./usr/share/man/man5/maas-snapshot-backup.yaml.5.gz | zcat | grep -F "retention.after_backup" >/dev/null ||
  msb_fail "the package's maas-snapshot-backup.yaml(5) is missing or lacks retention.after_backup"

# A fresh install of a MAAS package goes through both hooks and takes no backup.
msb_apt install maas-cli
msb_assert_eq 0 "$MSB_RC" "apt-get install maas-cli (fresh MAAS package)"
msb_apt remove maas-cli
msb_assert_eq 0 "$MSB_RC" "apt-get remove maas-cli (a MAAS package with nothing installed from it to lose)"

echo "# local change" >>/etc/maas-snapshot-backup/config.yaml

# --- removed: conffiles stay, the program is gone, apt and dpkg still work -----------------------
msb_apt remove maas-snapshot-backup
msb_assert_eq 0 "$MSB_RC" "apt-get remove maas-snapshot-backup"
msb_assert_eq "deinstall ok config-files" "$(msb_pkg_status maas-snapshot-backup)" "status after remove"
[[ ! -e /usr/sbin/maas-snapshot-backup ]] || msb_fail "the program is still there after remove"
for f in "${conffiles[@]}"; do [[ -f $f ]] || msb_fail "$f was removed by remove"; done
msb_apt install maas-cli
msb_assert_eq 0 "$MSB_RC" "apt-get install with the program removed (apt hook left behind)"
msb_dpkg -r maas-cli
msb_assert_eq 0 "$MSB_RC" "dpkg -r with the program removed (dpkg hook left behind)"
msb_dpkg -i "$(msb_fake_deb maas-cli 3.4.0)"
msb_assert_eq 0 "$MSB_RC" "dpkg -i with the program removed"
msb_dpkg -P maas-cli
msb_assert_eq 0 "$MSB_RC" "dpkg -P with the program removed"

# --- reinstalled: the local change is kept --------------------------------------------------------
msb_pkg_install_tool
grep -qx "# local change" /etc/maas-snapshot-backup/config.yaml || msb_fail "reinstall lost the local change to config.yaml"
msb_log "ok: local change kept over remove and reinstall"

# --- purged: configuration, hooks and state gone, backups kept -------------------------------------
mkdir -p "$MSB_DEST" /var/lib/maas-snapshot-backup
echo keep >"$MSB_DEST/maas-backup-msbvm-20260101T000000Z.tar.gz"
echo state >/var/lib/maas-snapshot-backup/journal
# A file the operator put there (the restic password) survives the purge, and the purge says so.
install -m 0600 /dev/null /etc/maas-snapshot-backup/restic-password
msb_apt purge maas-snapshot-backup
msb_assert_eq 0 "$MSB_RC" "apt-get purge maas-snapshot-backup"
msb_assert_eq absent "$(dpkg-query -W -f '${db:Status-Status}' maas-snapshot-backup 2>/dev/null | sed 's/^not-installed$/absent/' || echo absent)" "status after purge"
for f in "${conffiles[@]}" /etc/maas-snapshot-backup/hooks /var/lib/maas-snapshot-backup; do
  [[ ! -e $f ]] || msb_fail "$f is left after purge"
done
[[ -f /etc/maas-snapshot-backup/restic-password ]] || msb_fail "purge removed the operator's restic password"
grep -q "kept your files in /etc/maas-snapshot-backup" "$MSB_RESULTS/apt.log" || msb_fail "purge did not say which of the operator's files it kept"
# The signing key (made by the first backup, needed to trust the off-host copies) is kept too.
msb_assert_eq "restic-password" "$(ls -A /etc/maas-snapshot-backup | grep -vx signing-key)" "what purge left in /etc/maas-snapshot-backup besides the signing key"
rm -rf /etc/maas-snapshot-backup
[[ -f $MSB_DEST/maas-backup-msbvm-20260101T000000Z.tar.gz ]] || msb_fail "purge deleted a backup"
grep -q "backups are kept" "$MSB_RESULTS/apt.log" || msb_fail "purge did not say that the backups are kept"
msb_log "ok: purge removed configuration, hooks and state, kept the backups and the operator's files and said so"
msb_apt install maas-cli
msb_assert_eq 0 "$MSB_RC" "apt-get after purge"
msb_apt purge maas-cli

# --- installed again: the shipped configuration is back ------------------------------------------
msb_pkg_install_tool
for f in "${conffiles[@]}"; do [[ -f $f ]] || msb_fail "$f missing after reinstall"; done
! grep -q "# local change" /etc/maas-snapshot-backup/config.yaml || msb_fail "the purged local change came back"
! grep -qE '^[a-z_]+:' /etc/maas-snapshot-backup/config.yaml || msb_fail "the shipped config.yaml sets a key"
msb_assert_eq 1 "$(ls -1 "$MSB_DEST" | wc -l)" "files in the destination (no backup was taken by any of this)"
rm -rf "$MSB_DEST"
msb_summary "install, remove, reinstall, purge, install: hooks harmless without the program, backups kept"
