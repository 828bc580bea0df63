#!/bin/bash
# A region+rack with DHCP on, from stand-in packages built from MAAS 3.4.10's own debian/ (real
# unit files: rackd's ExecStartPre deletes dhcpd.conf, maas-dhcpd BindsTo rackd and has
# ConditionPathExists on it; rackd writes it again and restarts maas-dhcpd once the region
# serves, MSB_REGION_SERVE_DELAY s after its start). PostgreSQL and /var/lib/maas on LVM (ext4).
# A backup with `quiesce: stop` and one with `freeze` (the pause regiond feels, each), then a
# restore of the stop backup: every exit 0, MAAS as it was, maas-dhcpd included once rackd
# rewrote its config, and the restore never undoes itself because maas-dhcpd waits on its condition.
# msb-needs: binary schema packaging
# msb-timeout: 900
# msb-cost: 739
source "$MSB_LIB"
source "$MSB_IN/fake-maas/pkg-lib.sh"
source "$MSB_IN/maas-packaging/standin-lib.sh"
msb_standin_setup 3.4.10
t_start=$SECONDS

msb_make_vg
msb_make_lv pg 1G; msb_mkfs "/dev/$MSB_VG/pg" ext4
msb_pgdata_on "/dev/$MSB_VG/pg" ext4
msb_make_lv maas 1G; msb_mkfs "/dev/$MSB_VG/maas" ext4
msb_mount_over "/dev/$MSB_VG/maas" ext4 /var/lib/maas
msb_defer msb_standin_remove   # before the volumes go

# MAAS 3.4.10, region+rack (the `maas` metapackage), as apt installs it.
msb_standin_publish 3.4.10
MAAS_SNAPSHOT_BACKUP_SKIP=1 msb_apt install maas
msb_assert_eq 0 "$MSB_RC" "apt-get install maas (3.4.10)"
msb_assert_eq 1:3.4.10-0ubuntu1 "$(msb_pkg_version maas-region-api)" "maas-region-api version"
msb_standin_settled
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >/var/lib/maas/secret
chown maas:maas /var/lib/maas/secret; chmod 0640 /var/lib/maas/secret
msb_standin_unit_states >"$MSB_RESULTS/units-before"
msb_log "units: $(tr '\n' ' ' <"$MSB_RESULTS/units-before")"
grep -qx 'maas-dhcpd active' "$MSB_RESULTS/units-before" || msb_fail "maas-dhcpd is not active before the backups"
msb_standin_packages >"$MSB_RESULTS/packages-before"
head_before=$(msb_standin_schema_head)

# --- backup, quiesce stop --------------------------------------------------------------------------
msb_standin_config stop
msb_pause_start
msb_tool backup-stop backup --json --snapshot lvm
msb_pause_stop
stop_pause=$MSB_PAUSE_MS
msb_assert_eq 0 "$MSB_RC" "backup (stop) exit code"
stop_archive=$(jq -r .archive "$MSB_RESULTS/backup-stop.json")
stop_down=$(jq -r .downtime_ms "$MSB_RESULTS/backup-stop.json")
msb_log "stop: regiond's longest gap ${stop_pause} ms, downtime ${stop_down} ms"
# rackd was restarted: its ExecStartPre deleted dhcpd.conf; it writes it again once the region serves.
msb_standin_settled
msb_standin_unit_states >"$MSB_RESULTS/units-after-stop"
diff -u "$MSB_RESULTS/units-before" "$MSB_RESULTS/units-after-stop" >&2 || msb_fail "units after the stop backup differ"

# --- backup, quiesce freeze ------------------------------------------------------------------------
msb_standin_config freeze
dhcpd_pid=$(systemctl show -p MainPID --value maas-dhcpd.service)
msb_pause_start
msb_tool backup-freeze backup --json --snapshot lvm
msb_pause_stop
freeze_pause=$MSB_PAUSE_MS
msb_assert_eq 0 "$MSB_RC" "backup (freeze) exit code"
msb_assert_eq freeze "$(jq -r .quiesce "$MSB_RESULTS/backup-freeze.json")" "quiesce of the freeze backup"
freeze_down=$(jq -r .downtime_ms "$MSB_RESULTS/backup-freeze.json")
msb_assert_eq "$dhcpd_pid" "$(systemctl show -p MainPID --value maas-dhcpd.service)" "maas-dhcpd MainPID across the freeze"
msb_log "freeze: regiond's longest gap ${freeze_pause} ms, downtime ${freeze_down} ms"
msb_summary "LVM pause regiond felt: stop ${stop_pause} ms (downtime ${stop_down} ms), freeze ${freeze_pause} ms (downtime ${freeze_down} ms)"

# --- restore of the stop backup ----------------------------------------------------------------------
x=$(mktemp -d); msb_defer "rm -rf $x"
tar --numeric-owner -xpzf "$stop_archive" -C "$x" etc/maas var/lib/maas
MSB_TREE_ROOT=$x msb_standin_tree >"$MSB_RESULTS/tree-archived"
msb_standin_config stop
msb_tool restore restore "$stop_archive" --yes --json
msb_assert_eq 0 "$MSB_RC" "restore exit code"
msb_standin_settled
msb_standin_unit_states >"$MSB_RESULTS/units-after-restore"
diff -u "$MSB_RESULTS/units-before" "$MSB_RESULTS/units-after-restore" >&2 || msb_fail "units after the restore differ from before"
msb_log "ok: units as before the backups, maas-dhcpd active again"
msb_standin_packages >"$MSB_RESULTS/packages-after"
diff -u "$MSB_RESULTS/packages-before" "$MSB_RESULTS/packages-after" >&2 || msb_fail "packages changed"
msb_assert_eq "$head_before" "$(msb_standin_schema_head)" "schema head after the restore"
msb_standin_tree >"$MSB_RESULTS/tree-restored"
diff -u "$MSB_RESULTS/tree-archived" "$MSB_RESULTS/tree-restored" >&2 || msb_fail "MAAS files after the restore differ from the backup's"
msb_log "ok: $(wc -l <"$MSB_RESULTS/tree-restored") MAAS file entries as in the backup (dhcpd.conf rewritten by rackd included)"
n_arch=$(tar -xzOf "$stop_archive" dump.sql | msb_dump_counter /dev/stdin maas-regiond)
n_live=$(msb_sql "select n from msb_counter where service = 'maas-regiond'")
((n_live >= n_arch)) || msb_fail "regiond's counter went back: $n_live < $n_arch"
msb_tool status status --json
msb_summary "restore exit 0, units as before; scenario $((SECONDS - t_start)) s"
