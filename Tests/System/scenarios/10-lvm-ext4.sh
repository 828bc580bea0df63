#!/bin/bash
# PostgreSQL's data and /var/lib/maas on LVM logical volumes with ext4; /etc/maas on the root
# filesystem (copied in the window). Backup with --snapshot lvm: a COW snapshot of the maas LV.
# msb-needs: binary schema
# msb-timeout: 900
# msb-cost: 226
source "$MSB_LIB"
msb_lvm_pg_and_maas ext4
msb_maas_host
msb_backup_and_check --snapshot lvm
msb_assert_method /var/lib/maas lvm
msb_assert_method /etc/maas copy
