#!/bin/bash
# PostgreSQL's data and /var/lib/maas on LVM logical volumes with XFS; /etc/maas on the root
# filesystem (copied in the window). Backup with --snapshot lvm: a COW snapshot of the maas LV.
# msb-needs: binary schema
# msb-timeout: 900
source "$MSB_LIB"
msb_make_vg
msb_make_lv pg 1G; msb_mkfs "/dev/$MSB_VG/pg" xfs
msb_pgdata_on "/dev/$MSB_VG/pg" xfs
msb_make_lv maas 1G; msb_mkfs "/dev/$MSB_VG/maas" xfs
msb_mount_over "/dev/$MSB_VG/maas" xfs /var/lib/maas
msb_load_maasdb 3.4.0
msb_install_fake_maas
msb_fill_maas_tree 16
msb_write_config </dev/null
msb_backup_and_check --snapshot lvm
msb_assert_method /var/lib/maas lvm
msb_assert_method /etc/maas copy
