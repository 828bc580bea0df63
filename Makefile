# --- vm-test: system tests in a qemu VM (Tests/System/run-vm-tests.sh); root, qemu-system-x86, mmdebstrap.
# SCENARIOS="00-smoke 10-lvm-ext4" runs some only. The binary is built with the static Swift runtime.
VM_SCRATCH ?= .build-vm
vm-test:
	swift build -c release --static-swift-stdlib --scratch-path $(VM_SCRATCH) --product maas-snapshot-backup
	Tests/System/run-vm-tests.sh --binary $(VM_SCRATCH)/release/maas-snapshot-backup $(SCENARIOS)
.PHONY: vm-test
# --- end vm-test
# --- deb: the Debian package (debian/), built with dpkg-buildpackage and checked with lintian
# (no errors, no warnings); the files land in out/. Needs debian/control's Build-Depends, lintian
# and swift on PATH. DEB_FLAGS=-nc rebuilds without cleaning the Swift build first.
DEB_FLAGS ?=
deb:
	dpkg-buildpackage -b -us -uc $(DEB_FLAGS)
	mkdir -p out
	v=$$(dpkg-parsechangelog -S Version); \
	mv ../maas-snapshot-backup_$${v}_*.deb ../maas-snapshot-backup_$${v}_*.changes ../maas-snapshot-backup_$${v}_*.buildinfo out/ && \
	mv ../maas-snapshot-backup-dbgsym_$${v}_*deb out/ 2>/dev/null; \
	lintian --fail-on error,warning --display-info out/maas-snapshot-backup_$${v}_*.changes
.PHONY: deb
# --- end deb
