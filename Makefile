# maas-snapshot-backup: build, test, demo, package. Run as root on Debian 12 with Swift on PATH.
#   make demo   installs what is needed and runs a backup on a self-contained demo
#   make test-all  installs what is needed and runs every test (what CI runs): `make test` (unit,
#               integration on real PostgreSQL and Btrfs), then `make vm-test-deb` (the package
#               built and installed in a qemu VM: systemd, LVM, apt)
.PHONY: deps build test demo demo-clean bench
deps:
	bash scripts/install-deps.sh --vm --deb
build:
	swift build
test:
	@scripts/stage.sh "install packages" bash scripts/install-deps.sh
	@scripts/stage.sh "imports match Package.swift" $(MAKE) --no-print-directory check-imports
	@scripts/stage.sh "build with tests" swift build --build-tests
	@scripts/stage.sh "host tests" swift test
# check-imports: every import is a declared dependency (SwiftPM compiles undeclared ones); the
# self-test first shows the check fails on each kind of bad import in a fixture package.
check-imports:
	bash scripts/check-imports-test.sh
	python3 scripts/check-imports.py
.PHONY: check-imports
demo:
	bash scripts/install-deps.sh
	swift build
	bash scripts/demo.sh
demo-clean:
	bash Tests/Fixtures/testenv.sh down $${DEMO_DIR:-/tmp/maas-snapshot-backup-demo}
bench:
	Benchmarks/compress/run.sh 128
# --- vm-test: system tests in a qemu VM (Tests/System/run-vm-tests.sh); root, qemu-system-x86, mmdebstrap.
# SCENARIOS="00-smoke 10-lvm-ext4" runs some only. The binary is built with the static Swift runtime.
VM_SCRATCH ?= .build-vm
vm-test:
	bash scripts/install-deps.sh --vm
	swift build -c release --static-swift-stdlib --scratch-path $(VM_SCRATCH) --product maas-snapshot-backup
	Tests/System/run-vm-tests.sh --binary $(VM_SCRATCH)/release/maas-snapshot-backup $(SCENARIOS)
.PHONY: vm-test
# vm-test-deb: what CI runs after `make test`: the Debian package built here and installed in the
# VM with apt, then every scenario (the package ones included).
vm-test-deb:
	@scripts/stage.sh "install packages (VM, package)" bash scripts/install-deps.sh --vm --deb
	@scripts/stage.sh "Debian package (from the source package, network cut)" $(MAKE) deb-offline
	@scripts/stage.sh "VM tests" Tests/System/run-vm-tests.sh --deb "$$(ls -t out/maas-snapshot-backup_*_amd64.deb | head -n1)" $(SCENARIOS)
.PHONY: vm-test-deb
# test-all: the README's test command and what CI runs: the host tests, then the VM system tests.
test-all: test vm-test-deb
.PHONY: test-all
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
# deb-offline: the same package built from its source package (scripts/source-package.sh:
# SwiftPM dependencies vendored in debian/vendor) inside `unshare -n`, then lintian; CI installs
# this one in the VM, so the offline build is tested on every run.
deb-offline:
	scripts/test-offline-build.sh out
	v=$$(dpkg-parsechangelog -S Version); \
	lintian --fail-on error,warning --display-info out/maas-snapshot-backup_$${v}_*.changes
.PHONY: deb-offline
# --- end deb
# --- fuzz-apt-hook: libFuzzer (with AddressSanitizer) on the apt hook input parser for
# FUZZ_SECONDS, built by SwiftPM from the policy target MSBPackageHooks (Tests/Fuzz/AptHook); a crash
# or a failed round trip stops it and leaves the input in .build-fuzz/.
FUZZ_SECONDS ?= 60
fuzz-apt-hook:
	mkdir -p .build-fuzz/corpus
	swift build --scratch-path .build-fuzz/build --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address -Xswiftc -DAPT_HOOK_LIBFUZZER --product apt-hook-fuzz
	printf 'VERSION 3\nAPT::Architecture=amd64\nDPkg::Pre-Install-Pkgs::=/usr/sbin/x%%20y\n\nmaas-common 1:3.4.0-1 all foreign < 1:3.5.0-1 all foreign /var/cache/apt/archives/maas-common_1%%3a3.5.0-1_all.deb\nmaas-rack-controller 1:3.4.0-1 amd64 none > - - none **REMOVE**\nlibfoo1 - - none < 2.0-1 amd64 same **CONFIGURE**\n' >.build-fuzz/corpus/seed
	cd .build-fuzz && build/debug/apt-hook-fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 corpus
.PHONY: fuzz-apt-hook
# --- end fuzz-apt-hook
# --- bench-backup: the manual MAAS backup against maas-snapshot-backup on MAAS-like data
# (Benchmarks/backup/run.sh; root; about 8 minutes for the default scales on 2 cores, 8 GiB adds 26).
# BENCH_SCALES="0.5 2 8" adds the 8 GiB scale; MSB_BINARY=PATH skips the release build.
# Then Benchmarks/backup/images.sh: MAAS 3.5 boot images, images: uploaded against all, and the archive
# step on incompressible data against tar | pigz (BENCH_IMAGES_SYNCED_MIB, BENCH_IMAGES_UPLOADED_MIB).
BENCH_SCALES ?= 0.5 2
bench-backup:
	Benchmarks/backup/run.sh $(BENCH_SCALES)
	Benchmarks/backup/images.sh
.PHONY: bench-backup
# bench-restore: restore downtime and wall time against the documented manual restore, at two
# database sizes (Benchmarks/restore/run.sh; root; ROWS="20000 200000" by default).
bench-restore:
	Benchmarks/restore/run.sh $(BENCH_RESTORE_ROWS)
.PHONY: bench-restore
# --- end bench-backup
