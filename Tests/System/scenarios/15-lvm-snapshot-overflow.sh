#!/bin/bash
# A COW snapshot far too small (lvm.snapshot_size 8M) while a writer keeps rewriting a file on the
# origin during the archive: the snapshot overflows, the backup must fail (exit 1) saying to raise
# lvm.snapshot_size, with the services running again, no archive and nothing left behind.
# msb-needs: binary schema
# msb-timeout: 900
# msb-cost: 124
source "$MSB_LIB"
msb_make_vg
msb_make_lv maas 1G; msb_mkfs "/dev/$MSB_VG/maas" ext4
msb_mount_over "/dev/$MSB_VG/maas" ext4 /var/lib/maas
msb_load_maasdb 3.4.0
msb_install_fake_maas
msb_fill_maas_tree 96
msb_write_config <<'YAML'
lvm:
  snapshot_size: 8M
YAML
# The writer: rewrites 64 MiB in place, over and over, straight to the disk.
head -c 64M /dev/urandom >/var/lib/maas/churn
( while :; do dd if=/dev/urandom of=/var/lib/maas/churn bs=1M count=64 conv=notrunc oflag=direct status=none; done ) &
writer=$!
msb_defer "kill $writer"
msb_start_fake_maas
sleep 2
msb_backup --snapshot lvm
kill "$writer"; wait "$writer" 2>/dev/null || true
msb_assert_eq 1 "$MSB_BACKUP_RC" "backup exit code with an overflowing snapshot"
grep -q snapshot_size "$MSB_RESULTS/backup.stderr" || grep -q snapshot_size <<<"$MSB_BACKUP_JSON" ||
  msb_fail "the error does not tell to raise lvm.snapshot_size"
if compgen -G '/var/backups/maas-snapshot-backup/maas-backup-*' >/dev/null; then
  msb_fail "an archive was left: $(ls /var/backups/maas-snapshot-backup)"
fi
msb_log "ok: no archive"
msb_check_no_leftovers
msb_summary "failed as it should: $(jq -r '.error // empty' <<<"$MSB_BACKUP_JSON" | cut -c1-160)"
