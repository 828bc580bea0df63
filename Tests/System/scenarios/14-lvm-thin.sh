#!/bin/bash
# /var/lib/maas (ext4) and /etc/maas (XFS) on two thin LVs of one pool: two thin snapshots in the
# window. Thin snapshots take no size and must be made activatable (--setactivationskip n).
# msb-needs: binary schema
# msb-timeout: 900
# msb-cost: 212
# msb-ci: skip: a variant of 10-lvm-ext4 (thin snapshots)
source "$MSB_LIB"
msb_make_vg
msb_make_thinpool pool 2G
msb_make_thinlv maas 4G pool; msb_mkfs "/dev/$MSB_VG/maas" ext4
msb_make_thinlv etc 1G pool; msb_mkfs "/dev/$MSB_VG/etc" xfs
msb_mount_over "/dev/$MSB_VG/etc" xfs /etc/maas
msb_mount_over "/dev/$MSB_VG/maas" ext4 /var/lib/maas
msb_maas_host
msb_backup_and_check --snapshot lvm
msb_assert_method /var/lib/maas lvm
msb_assert_method /etc/maas lvm
