#!/bin/bash
# `apt-get install maas` from 3.4.10 to 3.5.13 (stand-in packages built from MAAS's own debian/
# folders) whose `maas-region dbupgrade` fails part way (the apt hook took its backup first), then
# `rollback`: the packages as before (maas-agent, new in 3.5 and Pre-Depending on maas-common,
# removed), the units as before (maas-apiserver, maas-temporal, maas-temporal-worker and maas-agent,
# gone with 3.5, neither started nor reported critical), the database at the 3.4 schema head, the
# files as before, and `recover` with nothing left to do. PostgreSQL and /var/lib/maas on Btrfs;
# first a `stop` and a `freeze` backup for the pause regiond feels on Btrfs.
# msb-needs: binary schema packaging
# msb-timeout: 1200
# msb-cost: 1490
source "$MSB_LIB"
source "$MSB_IN/fake-maas/pkg-lib.sh"
source "$MSB_IN/maas-packaging/standin-lib.sh"
msb_standin_setup 3.4.10 3.5.13
t_start=$SECONDS

msb_mkfs_mount "$MSB_DATA_DISK" btrfs /mnt/pool
btrfs -q subvolume create /mnt/pool/@pg
btrfs -q subvolume create /mnt/pool/@maas
dev=$(readlink -f "$MSB_DATA_DISK")
msb_pgdata_on "$dev" btrfs subvol=@pg
msb_mount_over "$dev" btrfs /var/lib/maas subvol=@maas
msb_defer msb_standin_remove   # before the volumes go

msb_standin_publish 3.4.10
MAAS_SNAPSHOT_BACKUP_SKIP=1 msb_apt install maas
msb_assert_eq 0 "$MSB_RC" "apt-get install maas (3.4.10)"
# The rack's image cache of 3.4 (3.5's preinst deletes it).
install -d -o maas -g maas /var/lib/maas/boot-resources/current
head -c 64K /dev/urandom >/var/lib/maas/boot-resources/current/root-tgz
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >/var/lib/maas/secret
chown maas:maas /var/lib/maas/secret; chmod 0640 /var/lib/maas/secret
msb_standin_settled

# --- the pause on Btrfs: stop, then freeze ----------------------------------------------------------
msb_standin_config stop
msb_pause_start
msb_tool backup-stop backup --json --snapshot btrfs
msb_pause_stop
stop_pause=$MSB_PAUSE_MS
msb_assert_eq 0 "$MSB_RC" "backup (stop) exit code"
stop_down=$(jq -r .downtime_ms "$MSB_RESULTS/backup-stop.json")
msb_standin_config freeze
msb_pause_start
msb_tool backup-freeze backup --json --snapshot btrfs
msb_pause_stop
freeze_pause=$MSB_PAUSE_MS
msb_assert_eq 0 "$MSB_RC" "backup (freeze) exit code"
freeze_down=$(jq -r .downtime_ms "$MSB_RESULTS/backup-freeze.json")
msb_summary "Btrfs pause regiond felt: stop ${stop_pause} ms (downtime ${stop_down} ms), freeze ${freeze_pause} ms (downtime ${freeze_down} ms)"
# After the stop backup rackd deleted dhcpd.conf and writes it again once the region serves.
msb_standin_settled

# --- the state to come back to ----------------------------------------------------------------------
msb_standin_unit_states >"$MSB_RESULTS/units-before"
msb_log "units: $(tr '\n' ' ' <"$MSB_RESULTS/units-before")"
msb_standin_packages >"$MSB_RESULTS/packages-before"
grep -q '^maas-agent ' "$MSB_RESULTS/packages-before" && msb_fail "maas-agent installed with 3.4"
head_before=$(msb_standin_schema_head)
msb_assert_eq 0304_interface_params_no_autoconf "$head_before" "schema head of 3.4"
msb_standin_tree >"$MSB_RESULTS/tree-before"
rm -rf "$MSB_DEST"/maas-backup-*   # only the pre-upgrade backup from here on
msb_standin_config stop

# --- the upgrade whose dbupgrade fails part way --------------------------------------------------------
touch /run/msb-standin/dbupgrade-fail
msb_standin_publish 3.4.10 3.5.13
msb_apt install maas
rm -f /run/msb-standin/dbupgrade-fail
[[ $MSB_RC != 0 ]] || msb_fail "the 3.5.13 upgrade, whose dbupgrade fails, reported success"
grep -q 'dbupgrade: migration .* failed' "$MSB_RESULTS/apt.log" || msb_fail "apt's output does not show the failed dbupgrade"
[[ $(msb_standin_schema_head) != "$head_before" ]] || msb_fail "the failed dbupgrade left the schema head at 3.4's"
msb_log "half-migrated: schema head $(msb_standin_schema_head)"
msb_assert_eq 1:3.5.13-0ubuntu1 "$(msb_pkg_version maas-agent)" "maas-agent unpacked by the upgrade"
[[ ! -e /var/lib/maas/boot-resources ]] || msb_fail "3.5's preinst did not delete boot-resources"
pre=$(msb_archives | tail -n1)
[[ -n $pre ]] || msb_fail "the apt hook took no backup"
msb_log "pre-upgrade backup: $(basename "$pre") ($(msb_archive_reason "$pre"))"

# --- rollback -------------------------------------------------------------------------------------------
msb_repo_publish "$MSB_SDEBS"/msb-standin-maas-deps_*.deb   # no 3.4 in any repository: the saved .debs only
rm -f /var/cache/apt/archives/*.deb
msb_tool rollback rollback --yes --json
rollback_rc=$MSB_RC
msb_standin_packages >"$MSB_RESULTS/packages-after"
diff -u "$MSB_RESULTS/packages-before" "$MSB_RESULTS/packages-after" >&2 && pk=same || pk=differ
msb_assert_eq 0 "$rollback_rc" "rollback exit code"
msb_assert_eq same "$pk" "MAAS packages after the rollback against before (diff above)"
[[ $(msb_pkg_status maas-agent) != *" installed" ]] || msb_fail "maas-agent still installed after the rollback: $(msb_pkg_status maas-agent)"
for u in maas-apiserver maas-temporal maas-temporal-worker maas-agent; do
  # Per line of the log, per field of the result (the JSON is one line: a grep over it would
  # tie the unit to another unit's state).
  bad=$(grep -iE "$u(\.service)?[^a-z-].*(fail|not active|critical|inactive|error)" "$MSB_RESULTS/rollback.stderr" || true)
  bad+=$(jq -r --arg u "$u" '.restore | [(.services_started // [])[], (.services_inactive_by_condition // [])[],
           ((.services_left_to_owner // [])[] | .unit)] | map(select(. == $u)) | .[]' "$MSB_RESULTS/rollback.json")
  [[ -z $bad ]] || msb_fail "the rollback started or reports $u: $bad"
  if [[ $u != maas-temporal* ]]; then
    jq -e --arg u "$u" '.restore.services_gone | index($u)' "$MSB_RESULTS/rollback.json" >/dev/null || msb_fail "$u is not listed as gone"
  fi
  [[ $(systemctl show -p LoadState --value "$u.service") == not-found ]] || msb_fail "$u.service still known to systemd"
done
msb_standin_settled
msb_standin_unit_states >"$MSB_RESULTS/units-after"
diff -u "$MSB_RESULTS/units-before" "$MSB_RESULTS/units-after" >&2 || msb_fail "units after the rollback differ from before"
msb_assert_eq "$head_before" "$(msb_standin_schema_head)" "schema head after the rollback"
[[ -z $(msb_sql "select 1 from pg_namespace where nspname = 'temporal'") ]] || msb_fail "schema temporal (from the half migration) still there"
msb_standin_tree >"$MSB_RESULTS/tree-after"
# MAAS's own maas-rack-controller postinst (3.4.10, run again by the rollback's dpkg -i) does
# `chown root:maas /var/lib/maas/dhcpd-interfaces`; the stand-in rackd had rewritten it as maas.
# That owner is the packaging's doing, not the restore's: compared without it.
norm() { sed -E 's#^(var/lib/maas/dhcpd-interfaces f [0-7]+ )[a-z]+:maas #\1*:maas #' "$1"; }
diff -u <(norm "$MSB_RESULTS/tree-before") <(norm "$MSB_RESULTS/tree-after") >&2 || msb_fail "MAAS files after the rollback differ from before"
msb_log "ok: packages, units, schema head and $(wc -l <"$MSB_RESULTS/tree-after") file entries as before the upgrade"

msb_tool recover recover --json
msb_assert_eq 0 "$MSB_RC" "recover exit code"
msb_assert_eq "nothing to do" "$(jq -r .status "$MSB_RESULTS/recover.json")" "recover status"
msb_log "recover: $(head -c 600 "$MSB_RESULTS/recover.json")"
msb_summary "3.5.13 upgrade with a failed dbupgrade rolled back to 3.4.10; scenario $((SECONDS - t_start)) s"
