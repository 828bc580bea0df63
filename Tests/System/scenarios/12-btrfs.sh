#!/bin/bash
# PostgreSQL's data and /var/lib/maas on Btrfs subvolumes of one filesystem, /etc/maas on the
# root filesystem (copied in the window). Backup with --snapshot btrfs.
# msb-needs: binary schema
# msb-timeout: 900
source "$MSB_LIB"
msb_mkfs_mount "$MSB_DATA_DISK" btrfs /mnt/pool
btrfs -q subvolume create /mnt/pool/@pg
btrfs -q subvolume create /mnt/pool/@maas
dev=$(readlink -f "$MSB_DATA_DISK")
# Subvolumes mounted at their places (mount_over copies the current contents in).
msb_pgdata_on_btrfs() {
  systemctl stop postgresql@15-main.service
  msb_defer "systemctl start postgresql@15-main.service"
  cp -a /var/lib/postgresql/. /mnt/pool/@pg/
  mount -t btrfs -o subvol=@pg "$dev" /var/lib/postgresql
  msb_defer "umount -l /var/lib/postgresql"
  msb_defer "systemctl stop postgresql@15-main.service"
  systemctl start postgresql@15-main.service
  msb_pg_up
}
msb_pgdata_on_btrfs
mkdir -p /var/lib/maas
mount -t btrfs -o subvol=@maas "$dev" /var/lib/maas
msb_defer "umount -l /var/lib/maas"
msb_load_maasdb 3.4.0
msb_install_fake_maas
msb_fill_maas_tree 16
msb_write_config </dev/null
msb_backup_and_check --snapshot btrfs
msb_assert_method /var/lib/maas btrfs
msb_assert_method /etc/maas copy
