#!/usr/bin/env bash
# Builds the Debian source package (out/source/) with its SwiftPM dependencies inside it, so that
# dpkg-buildpackage builds it with the network cut (as sbuild and PPA builders require):
#   debian/vendor/<identity>.git   bare git copies of each dependency at the resolved version
#   debian/vendor/pins             identity and original URL, one per line
#   Package.resolved               the exact revisions
# debian/rules points SwiftPM's mirrors at debian/vendor when the folder is there.
# The tree is `git archive HEAD` (committed files only), so run it on a clean checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
out=$(realpath -m "${1:-out/source}")
swift package resolve >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
version=$(dpkg-parsechangelog -S Version)
tree="$work/maas-snapshot-backup-$version"
mkdir -p "$tree"
git archive HEAD | tar -x -C "$tree"
cp Package.resolved "$tree/"
mkdir -p "$tree/debian/vendor"
python3 - "$tree/debian/vendor/pins" <<'PY'
import json, sys
pins = json.load(open("Package.resolved"))["pins"]
with open(sys.argv[1], "w") as f:
    for p in pins:
        f.write(f'{p["identity"]} {p["location"]} {p["state"]["revision"]}\n')
PY
while read -r identity location revision; do
  # The checkout SwiftPM made (any folder name case): its history holds the pinned revision.
  src=$(find .build/checkouts -maxdepth 1 -iname "$identity" | head -n1)
  [ -n "$src" ] || { echo "source-package.sh: no checkout of $identity in .build/checkouts" >&2; exit 1; }
  git clone -q --bare --no-local "$src" "$tree/debian/vendor/$identity.git"
  git -C "$tree/debian/vendor/$identity.git" cat-file -e "$revision^{commit}"
done <"$tree/debian/vendor/pins"
mkdir -p "$out"
(cd "$work" && dpkg-source -b "maas-snapshot-backup-$version" >/dev/null)
mv "$work"/maas-snapshot-backup_"$version".* "$out/"
ls -l "$out"
