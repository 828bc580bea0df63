#!/bin/bash
# PostgreSQL's data and /var/lib/maas on LVM logical volumes with XFS; /etc/maas on the root
# filesystem (copied in the window). Backup with --snapshot lvm: a COW snapshot of the maas LV.
# msb-needs: binary schema
# msb-timeout: 900
# msb-cost: 225
# msb-ci: skip: a file-system variant of 10-lvm-ext4 (XFS: frozen by LVM, mounted nouuid)
source "$MSB_LIB"
msb_lvm_pg_and_maas xfs
msb_maas_host
msb_backup_and_check --snapshot lvm
msb_assert_method /var/lib/maas lvm
msb_assert_method /etc/maas copy
