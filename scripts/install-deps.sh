#!/usr/bin/env bash
# Installs what building, the demo and the tests need on a fresh Debian 12 machine (as root).
# Swift itself is expected on PATH (/opt/swift here); everything else comes from Debian.
#   install-deps.sh            build + host tests + demo
#   install-deps.sh --vm       also the VM system tests (qemu, mmdebstrap)
#   install-deps.sh --deb      also the Debian package build (debhelper, lintian)
set -euo pipefail
pkgs=(
  # C libraries the program links
  libpq-dev libbtrfsutil-dev liblvm2-dev zlib1g-dev libarchive-dev libssl-dev pkgconf
  # run time and tests: PostgreSQL 15, Btrfs, loop devices, tar/gzip for restore checks
  postgresql-15 postgresql-client-15 btrfs-progs lvm2 util-linux mount tar gzip pigz openssl
  binutils dpkg-dev
  # off-host copies (issue 16): restic, and the SFTP and REST servers its tests start themselves
  restic openssh-server rclone
  # the S3 back end's test server (moto, from PyPI into a virtualenv below) and a client to look into it
  python3-venv curl
)
for a in "$@"; do
  case $a in
    --vm) pkgs+=(qemu-system-x86 qemu-utils mmdebstrap e2fsprogs dosfstools) ;;
    --deb) pkgs+=(debhelper lintian fakeroot build-essential) ;;
    *) echo "install-deps.sh: unknown option $a" >&2; exit 64 ;;
  esac
done
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# moto's S3 server for the restic S3 test (Tests/Fixtures/restic-servers.sh s3-up), in its own
# virtualenv outside the tree (Debian's python3, so the system's Python is never touched).
venv=${MSB_MOTO_VENV:-/var/cache/maas-snapshot-backup-tests/venv}
if [ ! -x "$venv/bin/moto_server" ]; then
  rm -rf "$venv" && mkdir -p "$(dirname "$venv")"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]>=5,<6'
fi
# The Debian postgresql package starts a cluster of its own; the tests start their own and do not need it.
command -v swift >/dev/null || { echo "install-deps.sh: swift is not on PATH (Swift 6.3 toolchain needed)" >&2; exit 69; }
