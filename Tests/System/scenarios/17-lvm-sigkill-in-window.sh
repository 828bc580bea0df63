#!/bin/bash
# SIGKILL inside the window on a real systemd host with LVM: the dead-man guard starts the stopped
# MAAS services again; `status` lists the killed run and its snapshot LV; `recover` removes the LV,
# its mounts and files; then a backup works. Also SIGTERM in the window: the run itself cleans up.
# msb-needs: binary schema
# msb-timeout: 900
# msb-cost: 305
source "$MSB_LIB"
msb_lvm_pg_and_maas ext4
msb_maas_host
msb_start_fake_maas

# Starts a backup (a child of this shell) that pauses after STEP; waits until it is there; sets pid.
paused_backup() { # STEP PAUSE_SECONDS
  local marker=/run/msb-pause-marker
  rm -f "$marker"
  MSB_TEST_PAUSE_AFTER=$1 MSB_TEST_PAUSE_SECONDS=$2 MSB_TEST_PAUSE_MARKER=$marker \
    maas-snapshot-backup backup --snapshot lvm >"$MSB_RESULTS/paused-$1.out" 2>&1 &
  pid=$!
  for _ in $(seq 600); do [[ -f $marker ]] && break; sleep 0.2; done
  [[ -f $marker ]] || msb_fail "the backup never reached step $1"
}
snapshot_lvs() { lvs --noheadings -o lv_name "$MSB_VG" 2>/dev/null | tr -d ' ' | grep '^msb-' || true; }

# --- SIGKILL after the snapshot: MAAS is stopped, the snapshot LV exists --------------------------
paused_backup snapshot 120
systemctl is-active --quiet maas-regiond && msb_fail "maas-regiond should be stopped inside the window"
[[ -n $(snapshot_lvs) ]] || msb_fail "no snapshot LV inside the window"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
t0=$SECONDS
for _ in $(seq 300); do msb_fake_maas_all_active && break; sleep 0.5; done
msb_fake_maas_all_active || msb_fail "the guard did not start the services after SIGKILL"
guard_s=$((SECONDS - t0))
msb_log "ok: services active again ${guard_s} s after the SIGKILL (dead-man guard)"

# Exit 4: no backup yet (status.max_backup_age_hours); not 1: the guard brought MAAS back.
st_rc=0
maas-snapshot-backup status --json >"$MSB_RESULTS/status.json" || st_rc=$?
msb_assert_eq 4 "$st_rc" "status's exit code after the SIGKILL (no backup yet, MAAS running)"
msb_assert_eq 1 "$(jq '.leftovers | length' "$MSB_RESULTS/status.json")" "leftovers listed by status"
[[ -n $(snapshot_lvs) ]] || msb_fail "the killed run's snapshot LV should still be there before recover"
maas-snapshot-backup recover --json >"$MSB_RESULTS/recover.json" || msb_fail "recover failed: $(cat "$MSB_RESULTS/recover.json")"
msb_assert_eq "" "$(snapshot_lvs)" "snapshot LVs after recover"
msb_assert_eq 0 "$(ls /var/backups/maas-snapshot-backup/*.tar.gz 2>/dev/null | wc -l)" "archives after the killed run"
maas-snapshot-backup recover | grep -q "Nothing to recover" || msb_fail "a second recover found more"

# --- SIGTERM in the window: the run finishes the window, then cleans up itself ---------------------
# (the pause is not cut short by the signal: keep it short)
paused_backup snapshot 10
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
msb_assert_eq 1 "$rc" "exit code after SIGTERM in the window"
msb_fake_maas_all_active || msb_fail "services not active after SIGTERM in the window"
msb_assert_eq "" "$(snapshot_lvs)" "snapshot LVs after SIGTERM"
msb_assert_eq 0 "$(jq '.leftovers | length' <(maas-snapshot-backup status --json))" "leftovers after SIGTERM"

# --- and the next backup works --------------------------------------------------------------------
msb_backup_and_check --snapshot lvm
msb_summary "SIGKILL in the window: services back after ${guard_s} s, recover removed the snapshot LV; SIGTERM cleaned up; next backup ok"
