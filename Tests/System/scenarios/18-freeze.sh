#!/bin/bash
# quiesce freeze on a real systemd (cgroup v2, dbus) with LVM: auto picks freeze; the units keep
# their MainPID and the journal shows no stop or start of them; the archive is crash-consistent
# (a file counter equal to its database counter or one behind); the same data backed up with
# --quiesce stop for the pause side by side; SIGKILL while frozen: the dead-man guard thaws, and
# with the guard killed too, its systemd-run timer thaws; status lists the frozen units, recover
# cleans up.
# msb-needs: binary schema
# msb-timeout: 1200
# msb-cost: 636
source "$MSB_LIB"
export MSB_FAKE_SYNC=1 MSB_QUIESCE=auto
msb_lvm_pg_and_maas ext4
msb_maas_host
units=("${MSB_FAKE_SERVICES[@]}")

freezer_states() { local u; for u in "${units[@]}"; do systemctl show -p FreezerState --value "$u"; done | sort -u | tr '\n' ' '; }
main_pids() { local u; for u in "${units[@]}"; do systemctl show -p MainPID --value "$u"; done | tr '\n' ' '; }

# --- reference: a bare `lvcreate -s` of the same LV, with and without dmeventd registration ---------
ref_ms() { # EXTRA_LVCREATE_ARGS...
  local t0 t1
  t0=$(date +%s%N)
  lvcreate -q -s -L 64M -n refsnap "$@" "$MSB_VG/maas" >/dev/null 2>&1 || msb_fail "lvcreate -s $* failed"
  t1=$(date +%s%N)
  lvremove -q -y "$MSB_VG/refsnap" >/dev/null
  echo $(((t1 - t0) / 1000000))
}
mon=() ign=()
for _ in 1 2; do mon+=("$(ref_ms)"); ign+=("$(ref_ms --ignoremonitoring)"); done
msb_log "bare lvcreate -s: ${mon[*]} ms monitored, ${ign[*]} ms with --ignoremonitoring"
msb_summary "bare lvcreate -s: ${mon[*]} ms (dmeventd monitoring), ${ign[*]} ms (--ignoremonitoring)"

# --- the probe: auto plans a freeze here --------------------------------------------------------
msb_start_fake_maas
plan=$(maas-snapshot-backup backup --dry-run --json --snapshot lvm) || msb_fail "dry run failed: $plan"
msb_assert_eq freeze "$(jq -r .plan.quiesce <<<"$plan")" "quiesce auto chose ($(jq -r .plan.quiesce_reason <<<"$plan"))"
msb_assert_eq 3 "$(jq '.plan.services_to_freeze | length' <<<"$plan")" "units to freeze"

# --- stop, then freeze, on the same data ---------------------------------------------------------
msb_backup_and_check --snapshot lvm --quiesce stop
stop_down=$(jq -r .downtime_ms <<<"$MSB_BACKUP_JSON")

msb_start_fake_maas
sleep 2
pids=$(main_pids)
since=$(date +%s)
sleep 1
msb_backup --snapshot lvm
msb_assert_eq 0 "$MSB_BACKUP_RC" "freeze backup exit code"
msb_assert_eq freeze "$(jq -r .quiesce <<<"$MSB_BACKUP_JSON")" "quiesce recorded in the result"
msb_assert_eq 3 "$(jq '.services_frozen | length' <<<"$MSB_BACKUP_JSON")" "units frozen"
msb_assert_eq 0 "$(jq '.services_stopped | length' <<<"$MSB_BACKUP_JSON")" "units stopped"
msb_assert_eq "$pids" "$(main_pids)" "MainPIDs before and after the freeze backup"
msb_assert_eq "running " "$(freezer_states)" "FreezerState after the backup"
jlines=$(journalctl --since "@$since" --no-pager -o cat $(printf ' -u %s' "${units[@]}") | grep -E '^(Stopping|Stopped|Starting|Started) ' || true)
[[ -z $jlines ]] || msb_fail "the journal shows a stop or start of a MAAS unit: $jlines"
msb_log "ok: same MainPIDs ($pids), no stop or start in the journal"
msb_check_archive
msb_check_no_leftovers
freeze_down=$(jq -r .downtime_ms <<<"$MSB_BACKUP_JSON")
steps=$(jq -r '[.window[] | "\(.step) \(.ms)"] | join(", ")' <<<"$MSB_BACKUP_JSON")
msb_log "window (freeze): $steps; downtime $freeze_down ms (stop: $stop_down ms)"
msb_summary "pause on LVM: stop $stop_down ms, freeze $freeze_down ms"

# --- SIGKILL while frozen: the guard thaws --------------------------------------------------------
paused_backup() { # STEP PAUSE_SECONDS
  local marker=/run/msb-pause-marker
  rm -f "$marker"
  MSB_TEST_PAUSE_AFTER=$1 MSB_TEST_PAUSE_SECONDS=$2 MSB_TEST_PAUSE_MARKER=$marker \
    maas-snapshot-backup backup --snapshot lvm --quiesce freeze >"$MSB_RESULTS/paused-$1.out" 2>&1 &
  pid=$!
  for _ in $(seq 600); do [[ -f $marker ]] && break; sleep 0.2; done
  [[ -f $marker ]] || msb_fail "the backup never reached step $1: $(cat "$MSB_RESULTS/paused-$1.out")"
}
wait_thawed() { # SECONDS; sets thaw_s
  local t0=$SECONDS
  while ((SECONDS - t0 < $1)); do [[ $(freezer_states) == "running " ]] && break; sleep 0.5; done
  [[ $(freezer_states) == "running " ]] || return 1
  thaw_s=$((SECONDS - t0))
}

paused_backup snapshot 300
msb_assert_eq "frozen " "$(freezer_states)" "FreezerState inside the window"
kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
wait_thawed 120 || msb_fail "the dead-man guard did not thaw the units after SIGKILL ($(freezer_states))"
msb_log "ok: thawed ${thaw_s} s after the SIGKILL (dead-man guard)"
guard_s=$thaw_s
msb_assert_eq "$pids" "$(main_pids)" "MainPIDs after the guard's thaw"
maas-snapshot-backup status --json >"$MSB_RESULTS/status.json"
msb_assert_eq 3 "$(jq '.leftovers[0].services_still_frozen | length' "$MSB_RESULTS/status.json")" "frozen units listed by status"
maas-snapshot-backup recover --json >"$MSB_RESULTS/recover.json" || msb_fail "recover failed: $(cat "$MSB_RESULTS/recover.json")"
grep -q '"thawed maas-regiond' "$MSB_RESULTS/recover.json" || msb_fail "recover did not thaw: $(cat "$MSB_RESULTS/recover.json")"
left=$(systemctl list-units --all --no-legend --plain 'maas-snapshot-backup-guard-*.timer' | awk '{print $1}')
[[ -z $left ]] || msb_fail "recover left the killed run's guard timer armed: $left"
msb_check_no_leftovers

# --- the guard killed too: its systemd-run timer thaws (window_timeout 30 s, timer at 60 s) -------
# 30 s, not less: the guard process thaws by itself that long after it was armed (before the
# snapshot), and under a loaded TCG host the snapshot and this script's pgrep took over 10 s.
msb_write_config <<'YAML'
window_timeout: 30
YAML
paused_backup snapshot 300
# At once (the guard process would thaw by itself 30 s after it was armed): the guard, then the run.
# (swift-subprocess spawns it in its own session, not necessarily as a direct child: found by its
# arguments, which name this window's timeout and the thaw)
guard=$(pgrep -f -- ' guard --timeout 30 --thaw -- ' | head -n1 || true)
[[ -n $guard ]] || msb_fail "no guard process of the run $pid: $(ps -eo pid,ppid,args | grep -i guard)"
kill -KILL "$guard" "$pid"; wait "$pid" 2>/dev/null || true
t_kill=$SECONDS
msb_assert_eq "frozen " "$(freezer_states)" "FreezerState with the run and its guard killed"
timer=$(systemctl list-units --all --no-legend --plain 'maas-snapshot-backup-guard-*.timer' | awk '{print $1}' | sort | tail -n1)
[[ -n $timer ]] || msb_fail "no systemd-run guard timer"
wait_thawed 180 || msb_fail "the guard's systemd-run timer did not thaw the units ($(freezer_states))"
thaw_s=$((SECONDS - t_kill))
# Its service ran (the thaw): the journal has lines of that unit.
journalctl --no-pager -o cat -u "${timer%.timer}.service" | grep -q . || msb_fail "no trace of ${timer%.timer}.service in the journal"
msb_log "ok: thawed ${thaw_s} s after the SIGKILL of the run and its guard (systemd-run timer at window_timeout + 30 s)"
maas-snapshot-backup recover --json >"$MSB_RESULTS/recover2.json" || msb_fail "recover failed: $(cat "$MSB_RESULTS/recover2.json")"
msb_check_no_leftovers
systemctl stop "${units[@]}"
msb_check_live_counters
msb_summary "SIGKILL while frozen: guard thawed after ${guard_s} s, the timer after ${thaw_s} s; recover ok"
