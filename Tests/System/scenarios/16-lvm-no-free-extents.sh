#!/bin/bash
# /var/lib/maas on an LV that fills its volume group: no room for a COW snapshot. Preflight must
# refuse (exit 69) naming the volume group, before any service is stopped.
# msb-needs: binary
# msb-timeout: 600
# msb-cost: 96
source "$MSB_LIB"
msb_make_vg
lvcreate -q -y -W y -n maas -l 100%FREE "$MSB_VG" >/dev/null
msb_defer "lvremove -f $MSB_VG/maas"
msb_settle
msb_mkfs "/dev/$MSB_VG/maas" ext4
msb_mount_over "/dev/$MSB_VG/maas" ext4 /var/lib/maas
msb_maas_host 3.4.0 4
msb_start_fake_maas
before=$(systemctl show -P ActiveEnterTimestampMonotonic maas-regiond)
msb_backup --snapshot lvm
msb_assert_eq 69 "$MSB_BACKUP_RC" "backup exit code without free extents"
grep -q "$MSB_VG" "$MSB_RESULTS/backup.stderr" || grep -q "$MSB_VG" <<<"$MSB_BACKUP_JSON" ||
  msb_fail "the error does not name volume group $MSB_VG"
msb_assert_eq "$before" "$(systemctl show -P ActiveEnterTimestampMonotonic maas-regiond)" "maas-regiond never restarted"
msb_check_no_leftovers
msb_summary "refused in preflight: $(jq -r '.error // empty' <<<"$MSB_BACKUP_JSON" | cut -c1-160)"
