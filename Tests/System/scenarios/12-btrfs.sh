#!/bin/bash
# PostgreSQL's data and /var/lib/maas on Btrfs subvolumes of one filesystem, /etc/maas on the
# root filesystem (copied in the window). Backup with --snapshot btrfs.
# msb-needs: binary schema
# msb-timeout: 900
# msb-cost: 211
# msb-ci: skip: Btrfs snapshots are also taken by pkg-50 (stop and freeze, real MAAS units) and by the host tests
source "$MSB_LIB"
msb_mkfs_mount "$MSB_DATA_DISK" btrfs /mnt/pool
btrfs -q subvolume create /mnt/pool/@pg
btrfs -q subvolume create /mnt/pool/@maas
dev=$(readlink -f "$MSB_DATA_DISK")
# The subvolumes mounted at their places (msb_mount_over copies the current contents in).
msb_pgdata_on "$dev" btrfs subvol=@pg
msb_mount_over "$dev" btrfs /var/lib/maas subvol=@maas
msb_maas_host
msb_backup_and_check --snapshot btrfs
msb_assert_method /var/lib/maas btrfs
msb_assert_method /etc/maas copy
