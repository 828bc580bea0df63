# --- vm-test: system tests in a qemu VM (Tests/System/run-vm-tests.sh); root, qemu-system-x86, mmdebstrap.
# SCENARIOS="00-smoke 10-lvm-ext4" runs some only. The binary is built with the static Swift runtime.
VM_SCRATCH ?= .build-vm
vm-test:
	swift build -c release --static-swift-stdlib --scratch-path $(VM_SCRATCH) --product maas-snapshot-backup
	Tests/System/run-vm-tests.sh --binary $(VM_SCRATCH)/release/maas-snapshot-backup $(SCENARIOS)
.PHONY: vm-test
# --- end vm-test
