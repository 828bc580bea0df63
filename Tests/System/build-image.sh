#!/usr/bin/env bash
# Builds (once) the Debian 12 guest image the system tests boot, and prints the folder holding
# root.img, vmlinuz and initrd.img. The image is cached outside the repo, keyed on a hash of this
# script (package list and customisation included), so editing either builds a new one.
#
#   Tests/System/build-image.sh [--print-key]
# Environment: MSB_VM_CACHE (default /var/cache/maas-snapshot-backup-vm), MSB_VM_MIRROR (optional
# Debian mirror URI; default: mmdebstrap's deb.debian.org plus updates and security).
set -euo pipefail

cache=${MSB_VM_CACHE:-/var/cache/maas-snapshot-backup-vm}

# Guest packages: init + udev, the storage stacks under test, PostgreSQL, a kernel with
# device-mapper, the runtime libraries of maas-snapshot-backup (libpq5 ... libssl3) and what it
# recommends (dpkg-repack: the saved .debs of packages installed from a file: repository); dbus:
# the system bus `systemctl freeze` needs (every MAAS server has it; quiesce freeze); sudo: the
# stand-in rackd restarts maas-dhcpd through MAAS's own sudoers rule, as the real one does.
packages=(
  systemd-sysv udev kmod initramfs-tools linux-image-cloud-amd64
  util-linux mount fdisk procps psmisc e2fsprogs xfsprogs btrfs-progs
  lvm2 dmsetup thin-provisioning-tools
  postgresql postgresql-client
  libpq5 libbtrfsutil1 liblvm2cmd2.03 zlib1g libarchive13 libssl3
  tar gzip jq coreutils findutils diffutils
  dpkg-repack
  dbus
  sudo
)

key=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
if [[ ${1:-} == --print-key ]]; then echo "$key"; exit 0; fi
dir=$cache/$key
if [[ -f $dir/ready ]]; then echo "$dir"; exit 0; fi

[[ $(id -u) == 0 ]] || { echo "build-image.sh: must run as root (mmdebstrap --mode=root)" >&2; exit 77; }
for tool in mmdebstrap mkfs.ext4; do
  command -v "$tool" >/dev/null || { echo "build-image.sh: $tool missing (apt-get install mmdebstrap e2fsprogs)" >&2; exit 69; }
done

mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9
if [[ -f $dir/ready ]]; then echo "$dir"; exit 0; fi

start=$SECONDS
work=$cache/tmp-$key.$$
rm -rf "$work"; mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
root=$work/root

mirror=()
[[ -n ${MSB_VM_MIRROR:-} ]] && mirror=("$MSB_VM_MIRROR")

echo "build-image.sh: building guest image $key (mmdebstrap, takes a minute or two)" >&2
mmdebstrap --mode=root --variant=apt --quiet \
  --include="$(IFS=,; echo "${packages[*]}")" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --customize-hook='chroot "$1" apt-get clean' \
  bookworm "$root" "${mirror[@]}" >&2

# --- customisation ---------------------------------------------------------------------------
echo msbvm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 msbvm\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
: >"$root/etc/machine-id"

# Boots straight into the test runner: the tests come on a read-only disk (serial msb-input),
# results leave on another (serial msb-output); see run-vm-tests.sh.
cat >"$root/usr/local/sbin/msb-vmtest-boot" <<'BOOT'
#!/bin/bash
# Runs once per boot: waits for the system, unpacks the test inputs, runs them, writes the
# results as a tar onto the output disk and powers off.
set -u
in=/dev/disk/by-id/virtio-msb-input
out=/dev/disk/by-id/virtio-msb-output
work=/var/lib/msb-vmtest
log() { echo "msb-vmtest: $*" >/dev/console; }
rc=70
for _ in $(seq 60); do [[ -b $in && -b $out ]] && break; sleep 0.5; done
state=$(systemctl is-system-running --wait 2>&1)
log "system $state; running tests"
rm -rf "$work"; mkdir -p "$work/in" "$work/out"
echo "$state" >"$work/out/system-state"
if tar -xf "$in" -C "$work/in"; then
  bash "$work/in/runner.sh" "$work/in" "$work/out" >"$work/out/runner.log" 2>&1
  rc=$?
else
  log "cannot read the input disk"
fi
echo "$rc" >"$work/out/exit-code"
[[ $rc == 0 ]] || journalctl -b --no-pager >"$work/out/journal.txt" 2>&1
tar -cf "$out" -C "$work" out && sync && blockdev --flushbufs "$out"
log "done (exit $rc); powering off"
systemctl poweroff --force --force
BOOT
chmod 0755 "$root/usr/local/sbin/msb-vmtest-boot"
cat >"$root/etc/systemd/system/msb-vmtest.service" <<'UNIT'
[Unit]
Description=maas-snapshot-backup system tests
After=basic.target

[Service]
Type=simple
ExecStart=/usr/local/sbin/msb-vmtest-boot
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/msb-vmtest.service "$root/etc/systemd/system/multi-user.target.wants/msb-vmtest.service"
# Nothing periodic or interactive in a test guest.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
            getty@tty1.service getty-static.service serial-getty@ttyS0.service systemd-timesyncd.service \
            xfs_scrub_all.timer btrfs-scrub@.timer man-db.timer dpkg-db-backup.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# Snappier PostgreSQL under emulation; the tests do not care about durability across crashes.
conf=$(ls -d "$root"/etc/postgresql/*/main | head -n1)
[[ -n $conf ]] || { echo "build-image.sh: no PostgreSQL cluster was created" >&2; exit 1; }
printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = 64MB\n' \
  >"$conf/conf.d/msb-vmtest.conf"

mkdir -p "$work/out"
cp -L "$root/vmlinuz" "$work/out/vmlinuz"
cp -L "$root/initrd.img" "$work/out/initrd.img"
mkfs.ext4 -q -F -L msbroot -d "$root" "$work/out/root.img" 3G >&2
rm -rf "$root"
echo "$key" >"$work/out/key"
printf '%s\n' "${packages[@]}" >"$work/out/packages"
rm -rf "$dir"; mv "$work/out" "$dir"; touch "$dir/ready"
# Older images (other keys) are dead weight: 3 GB each.
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name 'tmp-*' -exec rm -rf {} +
echo "build-image.sh: image $key built in $((SECONDS - start)) s: $dir" >&2
echo "$dir"
