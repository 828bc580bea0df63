#!/bin/bash
# /etc/maas on a plain ext4 partition (no LVM: copied in the window), /var/lib/maas on an LVM
# logical volume (ext4) on the disk's other partition; PostgreSQL stays on the root filesystem.
# --snapshot auto must pick LVM for /var/lib/maas and a copy for /etc/maas.
# msb-needs: binary schema
# msb-timeout: 900
# msb-cost: 195
# msb-ci: skip: a layout variant of 10-lvm-ext4 (/etc/maas copied, /var/lib/maas by LVM, as 10 does)
source "$MSB_LIB"
msb_partition 512M rest
msb_mkfs "${MSB_PARTS[0]}" ext4
msb_mount_over "${MSB_PARTS[0]}" ext4 /etc/maas
msb_make_vg "${MSB_PARTS[1]}"
msb_make_lv maas 1G; msb_mkfs "/dev/$MSB_VG/maas" ext4
msb_mount_over "/dev/$MSB_VG/maas" ext4 /var/lib/maas
msb_maas_host 3.5.0
msb_backup_and_check
msb_assert_method /var/lib/maas lvm
msb_assert_method /etc/maas copy
