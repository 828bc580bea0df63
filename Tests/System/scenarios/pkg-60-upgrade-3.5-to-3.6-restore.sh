#!/bin/bash
# `apt-get install maas` from 3.5.13 to 3.6.5 (stand-in packages built from MAAS's own debian/
# folders; 3.6's dbupgrade adds one migration) that succeeds, the apt hook's backup taken first;
# then the pre-upgrade backup brought back: `restore` refuses it over MAAS 3.6 (exit 69, nothing
# changed) and names `rollback`, which brings back 3.5.13 (packages, units with maas-agent and
# maas-dhcpd, database at 3.5's schema head, files). PostgreSQL and /var/lib/maas on thin LVs.
# msb-needs: binary schema packaging
# msb-timeout: 1200
# msb-cost: 2580
# msb-ci: skip: the longest (43 min in a one-CPU VM, 19 in a two-CPU one): its rollback order (maas-common, which maas-agent Pre-Depends on, first) is also checked by RollbackPackagePlanTests on MAAS's real 3.5.13 debian/control
source "$MSB_LIB"
source "$MSB_IN/fake-maas/pkg-lib.sh"
source "$MSB_IN/maas-packaging/standin-lib.sh"
msb_standin_setup 3.5.13 3.6.5
t_start=$SECONDS

msb_make_vg
msb_make_thinpool pool 3G
msb_make_thinlv pg 1G pool; msb_mkfs "/dev/$MSB_VG/pg" ext4
msb_pgdata_on "/dev/$MSB_VG/pg" ext4
msb_make_thinlv maas 1G pool; msb_mkfs "/dev/$MSB_VG/maas" ext4
msb_mount_over "/dev/$MSB_VG/maas" ext4 /var/lib/maas
msb_defer msb_standin_remove   # before the volumes go

msb_standin_publish 3.5.13
MAAS_SNAPSHOT_BACKUP_SKIP=1 msb_apt install maas
msb_assert_eq 0 "$MSB_RC" "apt-get install maas (3.5.13)"
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >/var/lib/maas/secret
chown maas:maas /var/lib/maas/secret; chmod 0640 /var/lib/maas/secret
msb_standin_settled
msb_standin_wait_active maas-agent.service 120
msb_standin_unit_states >"$MSB_RESULTS/units-before"
msb_log "units: $(tr '\n' ' ' <"$MSB_RESULTS/units-before")"
msb_standin_packages >"$MSB_RESULTS/packages-before"
head_before=$(msb_standin_schema_head)
msb_standin_tree >"$MSB_RESULTS/tree-before"
msb_standin_config stop

msb_standin_publish 3.5.13 3.6.5
msb_apt install maas
msb_assert_eq 0 "$MSB_RC" "apt-get install maas (3.6.5)"
msb_assert_eq 1:3.6.5-0ubuntu1 "$(msb_pkg_version maas-region-api)" "maas-region-api after the upgrade"
msb_assert_eq 9999_msb_standin_3_6 "$(msb_standin_schema_head)" "schema head of 3.6"
pre=$(msb_archives | tail -n1)
[[ -n $pre ]] || msb_fail "the apt hook took no backup"
msb_log "pre-upgrade backup: $(basename "$pre") ($(msb_archive_reason "$pre"))"
msb_standin_wait_active maas-regiond.service 120

msb_tool restore restore "$pre" --yes --json
msb_assert_eq 69 "$MSB_RC" "restore of the 3.5 backup over MAAS 3.6"
grep -q rollback "$MSB_RESULTS/restore.stderr" || msb_fail "the refusal does not name rollback"
msb_assert_eq 9999_msb_standin_3_6 "$(msb_standin_schema_head)" "schema head after the refused restore"

msb_repo_publish "$MSB_SDEBS"/msb-standin-maas-deps_*.deb
rm -f /var/cache/apt/archives/*.deb
msb_tool rollback rollback "$pre" --yes --json
msb_assert_eq 0 "$MSB_RC" "rollback exit code"
msb_standin_packages >"$MSB_RESULTS/packages-after"
diff -u "$MSB_RESULTS/packages-before" "$MSB_RESULTS/packages-after" >&2 || msb_fail "MAAS packages after the rollback differ"
msb_assert_eq "$head_before" "$(msb_standin_schema_head)" "schema head after the rollback"
msb_standin_settled
msb_standin_wait_active maas-agent.service 120
msb_standin_unit_states >"$MSB_RESULTS/units-after"
diff -u "$MSB_RESULTS/units-before" "$MSB_RESULTS/units-after" >&2 || msb_fail "units after the rollback differ from before"
msb_standin_tree >"$MSB_RESULTS/tree-after"
# MAAS's maas-rack-controller postinst (run again by the rollback's dpkg -i) chowns
# dhcpd-interfaces root:maas; that owner is the packaging's doing: compared without it (as pkg-50).
norm() { sed -E 's#^(var/lib/maas/dhcpd-interfaces f [0-7]+ )[a-z]+:maas #\1*:maas #' "$1"; }
diff -u <(norm "$MSB_RESULTS/tree-before") <(norm "$MSB_RESULTS/tree-after") >&2 || msb_fail "MAAS files after the rollback differ from before"
msb_summary "3.6.5 upgrade, restore refused (69), rollback to 3.5.13; scenario $((SECONDS - t_start)) s"
