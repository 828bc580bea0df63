#!/bin/bash
# A MAAS upgrade whose postinst fails half way through its database migration (stand-in 3.6.0),
# after the apt hook took its backup; then `maas-snapshot-backup rollback --yes` brings back the
# database and files of that backup and the MAAS version it records (3.5.0, still in the local
# repository), and starts MAAS again.
# msb-needs: binary
# msb-timeout: 1500
# msb-cost: 461
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
v3=$(msb_fake_deb maas-region-controller 3.6.0)

# MAAS 3.5.0 running (installed as 3.4.0 and upgraded: one backup from that).
msb_repo_publish "$v1"
msb_apt install maas-region-controller
msb_assert_eq 0 "$MSB_RC" "install 3.4.0"
msb_repo_publish "$v1" "$v2"
msb_apt install maas-region-controller
msb_assert_eq 0 "$MSB_RC" "upgrade to 3.5.0"
msb_wait_active maas-regiond.service 120
msb_assert_eq 3.5.0 "$(msb_live_schema)" "schema before the failing upgrade"
sleep 2

# The region's rack secret, as MAAS keeps it; the pre-upgrade backup holds it.
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >/var/lib/maas/secret
chmod 640 /var/lib/maas/secret

# The failing upgrade.
msb_repo_publish "$v1" "$v2" "$v3"
msb_apt install maas-region-controller
[[ $MSB_RC != 0 ]] || msb_fail "the 3.6.0 upgrade, whose postinst fails, reported success"
msb_assert_eq 3.6.0-partial "$(msb_live_schema)" "schema after the failed migration"
[[ $(msb_pkg_status maas-region-controller) != "install ok installed" ]] || msb_fail "maas-region-controller looks configured"
msb_assert_eq 2 "$(msb_archive_count)" "archives (the failed upgrade's backup included)"
pre=$(msb_archives | tail -n1)
msb_assert_eq "pre-upgrade maas-region-controller 1:3.5.0-0msb1 -> 1:3.6.0-0msb1" "$(msb_archive_reason "$pre")" "reason"

# Roll back, with no network and no repository holding 3.5.0: only the .debs saved beside the
# backup can bring it back.
debs=${pre%.tar.gz}.debs
compgen -G "$debs/maas-region-controller_*3.5.0*.deb" >/dev/null || msb_fail "no saved maas-region-controller 3.5.0 .deb in $debs"
msb_repo_publish "$v3"
rm -f /var/cache/apt/archives/*.deb
set +e
maas-snapshot-backup rollback --yes --json >"$MSB_RESULTS/rollback.json" 2>"$MSB_RESULTS/rollback.stderr"
rc=$?
set -e
sed 's/^/  rollback| /' "$MSB_RESULTS/rollback.stderr" | tail -n 30
msb_assert_eq 0 "$rc" "rollback exit code"
msb_assert_eq 3.5.0 "$(msb_live_schema)" "schema after the rollback"
[[ -z $(msb_sql "select 1 from information_schema.columns where table_name = 'msb_counter' and column_name = 'msb_broken'") ]] ||
  msb_fail "the half-done migration's column is still there"
msb_assert_eq 1:3.5.0-0msb1 "$(msb_pkg_version maas-region-controller)" "version after the rollback"
msb_assert_eq "install ok installed" "$(msb_pkg_status maas-region-controller)" "status after the rollback"
msb_wait_active maas-regiond.service 120

# The database equals the pre-upgrade backup (row counts table by table, schema head above) and the
# files are byte-identical, with their owners and modes (the services' counter files change).
msb_live_row_counts | awk '{ gsub(/"/, "", $1); print $1, $2 }' | LC_ALL=C sort >"$MSB_RESULTS/live-rows"
jq -r '.database.maas_database as $db | .database.row_counts[$db] | to_entries[] | "\(.key | gsub("\""; "")) \(.value)"' \
  "$pre.manifest.json" | LC_ALL=C sort >"$MSB_RESULTS/pre-rows"
[[ -s $MSB_RESULTS/pre-rows ]] || msb_fail "the pre-upgrade manifest has no row counts"
diff -u "$MSB_RESULTS/pre-rows" "$MSB_RESULTS/live-rows" >&2 || msb_fail "row counts after the rollback differ from the pre-upgrade backup"
x=$(mktemp -d)
tar -xzpf "$pre" -C "$x" etc/maas var/lib/maas
n=0
while IFS= read -r -d '' f; do
  f=${f#"$x"/}
  [[ $f == *.counter ]] && continue
  cmp -s "$x/$f" "/$f" || msb_fail "/$f differs from the pre-upgrade backup after the rollback"
  msb_assert_eq "$(stat -c %a:%U:%G "$x/$f")" "$(stat -c %a:%U:%G "/$f")" "mode and owner of /$f"
  n=$((n + 1))
done < <(find "$x" -type f -print0)
rm -rf "$x"
((n > 0)) || msb_fail "the pre-upgrade backup holds no files to compare"
msb_log "ok: $n files byte-identical to the pre-upgrade backup; row counts equal"
# A restore onto a host whose rack secret differs (a fresh install makes a new one): the command
# that registers the rack controllers again is printed, with the restored secret.
archived_secret=$(tar -xzOf "$pre" var/lib/maas/secret)
[[ -n $archived_secret ]] || msb_fail "the pre-upgrade backup has no var/lib/maas/secret"
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >/var/lib/maas/secret
set +e
maas-snapshot-backup restore "$pre" --yes --json >"$MSB_RESULTS/restore.json" 2>"$MSB_RESULTS/restore.stderr"
rc=$?
set -e
sed 's/^/  restore| /' "$MSB_RESULTS/restore.stderr" | tail -n 20
msb_assert_eq 0 "$rc" "restore exit code"
msb_assert_eq "maas-rack register --url http://127.0.0.1:5240/MAAS --secret $archived_secret" \
  "$(jq -r .rack_register_command "$MSB_RESULTS/restore.json")" "rack register command"
msb_assert_eq "$archived_secret" "$(cat /var/lib/maas/secret)" "secret after the restore"
msb_wait_active maas-regiond.service 120
msb_summary "failed 3.6.0 upgrade rolled back to 3.5.0 from $(basename "$pre")"
