#!/bin/bash
# Harness smoke test, needs nothing of ours: systemd and PostgreSQL up, device-mapper snapshots
# (classic COW, thin, merge) work in the guest, and the stand-in MAAS services stop with the
# database counter equal to the file counter.
# msb-needs:
# msb-timeout: 600
# msb-cost: 142
# msb-ci: skip: the harness's own check (device-mapper, systemd, PostgreSQL in the guest): every other scenario needs the same
source "$MSB_LIB"

msb_pg_up
msb_assert_eq 1 "$(msb_sql 'select 1' 2>/dev/null || MSB_DB=postgres msb_sql 'select 1')" "PostgreSQL answers"

msb_make_vg
t0=$(date +%s%N)

# Classic LV + COW snapshot, mounted read-only like the driver does.
msb_make_lv origin 256M ext4 /mnt/origin
head -c 8M /dev/urandom >/mnt/origin/blob
sum=$(sha256sum </mnt/origin/blob)
sync
lvcreate -q -s -n snap -L 64M "$MSB_VG/origin" >/dev/null
echo changed >/mnt/origin/blob
mkdir -p /mnt/snap
mount -t ext4 -o ro,noload,nosuid,nodev,noexec "/dev/$MSB_VG/snap" /mnt/snap
msb_assert_eq "$sum" "$(sha256sum </mnt/snap/blob)" "classic snapshot keeps the old contents"
attr=$(lvs --noheadings -o lv_attr "$MSB_VG/snap" | tr -d ' ')
[[ $attr == s* ]] || msb_fail "snap attr $attr is not a snapshot"
umount /mnt/snap
lvremove -q -f "$MSB_VG/snap" >/dev/null

# Merge (what a rollback would use): snapshot, change, merge back.
lvcreate -q -s -n before -L 64M "$MSB_VG/origin" >/dev/null
echo after >/mnt/origin/marker
umount /mnt/origin
lvconvert -q --merge -i 1 "$MSB_VG/before" >/dev/null
mount -t ext4 "/dev/$MSB_VG/origin" /mnt/origin
[[ ! -e /mnt/origin/marker ]] || msb_fail "merged origin still has the file written after the snapshot"
msb_assert_eq changed "$(cat /mnt/origin/blob)" "merged origin content"

# Thin pool, thin LV on XFS, thin snapshot (activation skip off so it activates at once).
msb_make_thinpool pool 512M
msb_make_thinlv thin 1G pool xfs /mnt/thin
head -c 8M /dev/urandom >/mnt/thin/blob
tsum=$(sha256sum </mnt/thin/blob)
sync
lvcreate -q -s -kn -n tsnap "$MSB_VG/thin" >/dev/null
rm /mnt/thin/blob
mkdir -p /mnt/tsnap
mount -t xfs -o ro,nouuid,norecovery,nosuid,nodev,noexec "/dev/$MSB_VG/tsnap" /mnt/tsnap
msb_assert_eq "$tsum" "$(sha256sum </mnt/tsnap/blob)" "thin snapshot keeps the old contents"
umount /mnt/tsnap
lvremove -q -f "$MSB_VG/tsnap" >/dev/null
lvm_ms=$(( ($(date +%s%N) - t0) / 1000000 ))

# Stand-in MAAS services.
msb_load_maasdb 3.4.0
msb_install_fake_maas
msb_start_fake_maas
sleep 3
msb_fake_maas_all_active || msb_fail "stand-in services not all active"
t1=$(date +%s%N)
systemctl stop "${MSB_FAKE_SERVICES[@]}"
stop_ms=$(( ($(date +%s%N) - t1) / 1000000 ))
msb_check_live_counters
n=$(msb_sql "select min(n) from msb_counter")
((n > 10)) || msb_fail "stand-in services counted only to $n in 3 s"
msb_summary "lvm steps ${lvm_ms} ms; 3 services stopped in ${stop_ms} ms; counters reached >= $n"
