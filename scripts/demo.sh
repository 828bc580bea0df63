#!/usr/bin/env bash
# The self-contained demo: a throwaway PostgreSQL with the MAAS schema, a loop-device Btrfs tree
# and stand-in MAAS daemons (Tests/Fixtures/testenv.sh), then one real backup with its summary, a verify,
# and a look inside the archive. Everything lives in DEMO_DIR (default /tmp/maas-snapshot-backup-demo);
# `make demo-clean` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=${DEMO_DIR:-/tmp/maas-snapshot-backup-demo}
bin=${MSB_BINARY:-.build/debug/maas-snapshot-backup}
bash Tests/Fixtures/testenv.sh down "$demo"
bash Tests/Fixtures/testenv.sh up "$demo" --rows 5000
export PATH="$demo/bin:$PATH" FAKE_SYSTEMCTL_DIR="$demo/svc"
echo
echo "== the plan (--dry-run changes nothing) =="
"$bin" --config "$demo/config.yaml" --dry-run
echo
echo "== the backup =="
"$bin" --config "$demo/config.yaml" --reason demo
archive=$(ls -t "$demo"/backups/maas-backup-*.tar.gz | head -1)
echo
echo "== verify and list =="
"$bin" verify "$archive" --config "$demo/config.yaml"
"$bin" list --config "$demo/config.yaml"
echo
echo "== what is in it (tar tzf | head) =="
{ tar tzf "$archive" || true; } | head -12
echo "..."
echo
echo "Demo files are in $demo; the config is $demo/config.yaml. Remove them with: make demo-clean"
