#!/usr/bin/env bash
# Proves the source package builds with no network: the source package from source-package.sh is
# unpacked in a temporary folder and dpkg-buildpackage runs inside `unshare -n` (a network
# namespace with only a loopback that is down). Fails if the build or the .deb is missing.
#   test-offline-build.sh [OUT]   also copies the .deb, .changes and .buildinfo into OUT
set -euo pipefail
cd "$(dirname "$0")/.."
keep=${1:+$(realpath -m "$1")}
export PATH=/opt/swift/usr/bin:$PATH
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts/source-package.sh "$work/src"
cd "$work"
dpkg-source -x src/maas-snapshot-backup_*.dsc build >/dev/null
cd build
test -d debian/vendor || { echo "test-offline-build: the source package has no debian/vendor" >&2; exit 1; }
unshare -n -- sh -c 'ping -c1 -W1 deb.debian.org >/dev/null 2>&1 && { echo "network is reachable inside unshare -n" >&2; exit 1; }; exec dpkg-buildpackage -b -us -uc' >"$work/build.log" 2>&1 || {
  tail -n 30 "$work/build.log" >&2; echo "test-offline-build: dpkg-buildpackage failed with the network cut" >&2; exit 1; }
deb=$(ls "$work"/maas-snapshot-backup_*_amd64.deb)
dpkg-deb -c "$deb" >"$work/contents"
grep -q "\./usr/sbin/maas-snapshot-backup$" "$work/contents" || { echo "test-offline-build: the .deb has no /usr/sbin/maas-snapshot-backup" >&2; exit 1; }
if [ -n "$keep" ]; then
  mkdir -p "$keep"
  cp "$work"/maas-snapshot-backup_*.deb "$work"/maas-snapshot-backup_*.changes "$work"/maas-snapshot-backup_*.buildinfo "$keep"/
  cp "$work"/maas-snapshot-backup-dbgsym_*.deb "$keep"/ 2>/dev/null || true
fi
echo "test-offline-build: built $(basename "$deb") with the network cut ($(du -h "$deb" | cut -f1))"
