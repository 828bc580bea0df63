#!/usr/bin/env bash
# System tests in a throw-away Debian 12 VM (qemu, TCG is enough): real systemd, udev, LVM,
# device-mapper, Btrfs, XFS and PostgreSQL, none of which the build host needs to have.
#
#   Tests/System/run-vm-tests.sh [--binary PATH | --deb PATH] [--timeout SECONDS] [scenario...]
#
# Builds or reuses the guest image (build-image.sh, cached outside the repo), spreads the scenarios
# over MSB_VM_PARALLEL VMs (default 2) booted at once, packs for each VM its scenario scripts,
# lib.sh, the binary or .deb and the MAAS schema and packaging fixtures onto a read-only disk, runs
# the scenarios in order (each on its own data disk and volume group), reads the results back from
# an output disk, prints one line per scenario and finally "N passed, N failed".
# Scenarios declare what they need in header lines: "# msb-needs: binary|deb schema packaging",
# "# msb-timeout: SECONDS" (a safety net) and "# msb-cost: SECONDS" (what one took under TCG, to
# spread the work); one whose needs are not met is skipped with the reason. With MSB_VM_CI=1 (CI)
# a scenario with "# msb-ci: skip: WHY" is skipped too, with its reason.
# Host packages: qemu-system-x86 mmdebstrap e2fsprogs (and root).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# Each run gets its own folder (results stay there); one VM at a time on the machine (global lock).
runs=${MSB_VM_RUNS:-/var/tmp/maas-snapshot-backup-vm-runs}
vm_lock=${MSB_VM_LOCK:-/var/tmp/maas-snapshot-backup-vm-run.lock}
fixtures=${MSB_FIXTURES:-$repo/../shared/fixtures/maas-schema}
# MAAS's own debian/ folders (3.4.10, 3.5.13, 3.6.5), for the stand-in MAAS packages.
packaging=${MSB_PACKAGING_FIXTURES:-$(dirname "$fixtures")/maas-packaging}
binary= deb= extra_timeout=0
names=()

usage() { sed -n '5,6p' "${BASH_SOURCE[0]}" | sed 's/^# *//' >&2; exit 64; }
while (($#)); do
  case $1 in
    --binary) binary=$(realpath "$2"); shift 2 ;;
    --deb) deb=$(realpath "$2"); shift 2 ;;
    --timeout) extra_timeout=$2; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "run-vm-tests.sh: unknown option $1" >&2; usage ;;
    *) names+=("${1%.sh}"); shift ;;
  esac
done
[[ -n $binary && -n $deb ]] && { echo "run-vm-tests.sh: give --binary or --deb, not both" >&2; exit 64; }
[[ -z $binary || -x $binary ]] || { echo "run-vm-tests.sh: $binary is not an executable" >&2; exit 64; }
[[ -z $deb || -f $deb ]] || { echo "run-vm-tests.sh: $deb not found" >&2; exit 64; }
[[ $(id -u) == 0 ]] || { echo "run-vm-tests.sh: must run as root" >&2; exit 77; }
command -v qemu-system-x86_64 >/dev/null || { echo "run-vm-tests.sh: qemu-system-x86_64 missing (apt-get install qemu-system-x86)" >&2; exit 69; }

header() { sed -n "s/^# msb-$2: *//p" "$here/scenarios/$1.sh" | head -n1; }

# Without names: every scenario but those with a `# msb-known-failing: REASON` header (a product
# defect still open), which are listed as skipped with their reason and run only when named.
declare -A known_failing=()
if ((${#names[@]} == 0)); then
  for f in "$here"/scenarios/*.sh; do
    n=$(basename "$f" .sh)
    kf=$(header "$n" known-failing)
    if [[ -n $kf ]]; then known_failing[$n]=$kf; else names+=("$n"); fi
  done
fi

# Which scenarios run, which are skipped and why.
run=() skipped=()
declare -A skip_reason=()
for name in "${names[@]}"; do
  [[ -f $here/scenarios/$name.sh ]] || { echo "run-vm-tests.sh: no scenario $name" >&2; exit 64; }
  reason=
  for need in $(header "$name" needs); do
    case $need in
      binary) [[ -n $binary || -n $deb ]] || reason="needs --binary or --deb" ;;
      deb) [[ -n $deb ]] || reason="needs --deb" ;;
      schema) [[ -f $fixtures/maas-3.4.0.sql ]] || reason="MAAS schema fixtures absent ($fixtures)" ;;
      packaging) [[ -f $packaging/3.4.10/debian/control ]] || reason="MAAS packaging fixtures absent ($packaging)" ;;
    esac
  done
  # MSB_VM_CI=1 (CI's run, inside its time budget): a scenario with "# msb-ci: skip: WHY" (a variant
  # of another that runs) is left out and listed; every other run takes it.
  ci=$(header "$name" ci)
  if [[ -z $reason && ${MSB_VM_CI:-0} == 1 && $ci == skip:* ]]; then
    reason="left out of CI's run (its time budget; make vm-test-deb runs it): ${ci#skip: }"
  fi
  if [[ -n $reason ]]; then skipped+=("$name"); skip_reason[$name]=$reason; else run+=("$name"); fi
done

passed=0 failed=0
print_skips() {
  for name in "${!known_failing[@]}"; do printf 'SKIP  %-28s known failing, run it by name: %s\n' "$name" "${known_failing[$name]}"; done
  for name in "${skipped[@]}"; do printf 'SKIP  %-28s %s\n' "$name" "${skip_reason[$name]}"; done
}
if ((${#run[@]} == 0)); then
  print_skips; echo "${#skipped[@]} skipped"; echo "0 passed, 0 failed"; exit 0
fi

image=$("$here/build-image.sh")

# One run of this script at a time on this machine (CPU is scarce); the run itself boots up to
# MSB_VM_PARALLEL VMs at once.
mkdir -p "$runs"
exec 8>"$vm_lock"
if ! flock -n 8; then echo "run-vm-tests.sh: waiting for another test VM run to finish ($vm_lock)"; flock 8; fi
find "$runs" -mindepth 1 -maxdepth 1 -type d -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
work=$runs/$(date -u +%Y%m%dT%H%M%SZ)-$$
common=$work/common
mkdir -p "$common"

# What every VM gets on its input disk (a plain tar: no filesystem needed in the guest).
cp "$here/lib.sh" "$here/runner.sh" "$here/../Fixtures/stand-in-maasd.sh" "$common/"
cp -r "$here/fake-maas" "$here/maas-packaging" "$common/"
if [[ -d $fixtures ]]; then mkdir -p "$common/fixtures"; cp "$fixtures"/*.sql "$common/fixtures/" 2>/dev/null || true; fi
if [[ -d $packaging ]]; then
  mkdir -p "$common/fixtures/maas-packaging"; cp -r "$packaging"/. "$common/fixtures/maas-packaging/"
  # The stand-in MAAS packages, built here (the guest only builds msb-standin-maas-deps).
  wants=0
  for name in "${run[@]}"; do [[ " $(header "$name" needs) " == *" packaging "* ]] && wants=1; done
  if ((wants)); then
    versions=$(cd "$packaging" && ls -d */ | tr -d /)
    MSB_STANDIN_MAASD=$here/../Fixtures/stand-in-maasd.sh bash "$here/maas-packaging/build-standin-maas.sh" \
      "$common/standin-debs" "$packaging" "$fixtures" $versions >/dev/null
  fi
fi
[[ -n $binary ]] && { mkdir -p "$common/bin"; cp "$binary" "$common/bin/maas-snapshot-backup"; }
# Swift's crash backtracer, for a symbolicated trace should the binary crash in the guest.
bt=$(dirname "$(readlink -f "$(command -v swift 2>/dev/null || echo /nonexistent)")")/../libexec/swift/linux/swift-backtrace-static
[[ -x $bt && ( -n $binary || -n $deb ) ]] && { mkdir -p "$common/bin"; cp "$bt" "$common/bin/"; }
[[ -n $deb ]] && { mkdir -p "$common/deb"; cp "$deb" "$common/deb/"; }

# The scenarios are spread over MSB_VM_PARALLEL VMs of MSB_VM_SMP CPUs each (default 2 VMs of
# one CPU on this 2-core host: measured under TCG, two one-CPU VMs each run as fast as one two-CPU
# VM alone, while two two-CPU VMs or three one-CPU VMs each run at half speed): longest first, each
# to the VM with the least work so far, by the "# msb-cost: SECONDS" header (what the scenario took
# in one of two one-CPU VMs under TCG on a 2-core host, 2026-12-04). Inside a VM the scenarios keep
# their order by name.
parallel=${MSB_VM_PARALLEL:-2}
[[ $parallel =~ ^[1-9][0-9]*$ ]] || { echo "run-vm-tests.sh: MSB_VM_PARALLEL must be a positive number, not '$parallel'" >&2; exit 64; }
((parallel > ${#run[@]})) && parallel=${#run[@]}
declare -A vm_of=()
loads=()
for ((g = 0; g < parallel; g++)); do loads[g]=0; done
while read -r cost name; do
  best=0
  for ((g = 1; g < parallel; g++)); do ((loads[g] < loads[best])) && best=$g; done
  vm_of[$name]=$best; loads[best]=$((loads[best] + cost))
done < <(for name in "${run[@]}"; do c=$(header "$name" cost); echo "${c:-300} $name"; done | sort -k1,1nr -k2,2)

# Limits are safety nets, not assertions: under TCG on a loaded 2-core host a guest can run 10x slower.
timeout_scale=${MSB_VM_TIMEOUT_SCALE:-3}
left=
# MSB_VM_DEADLINE (seconds since the epoch) caps every VM: CI has a time budget. The scenarios'
# own limits stay; what a VM stopped by the cap finished is still reported from its console.
if [[ -n ${MSB_VM_DEADLINE:-} ]]; then
  left=$((MSB_VM_DEADLINE - $(date +%s)))
  ((left > 300)) || { echo "run-vm-tests.sh: only ${left} s left before MSB_VM_DEADLINE: not starting the VM" >&2; exit 1; }
fi

vm_names=() vm_limit=() vm_pid=()
for ((g = 0; g < parallel; g++)); do
  v=$work/vm$g
  mkdir -p "$v/in/scenarios" "$v/results"
  cp -al "$common"/. "$v/in/"
  : >"$v/in/scenarios.list"
  limit=300 i=0 names_g=
  for name in "${run[@]}"; do
    [[ ${vm_of[$name]} == "$g" ]] || continue
    cp "$here/scenarios/$name.sh" "$v/in/scenarios/"
    t=$(header "$name" timeout); t=$(( ${t:-600} * timeout_scale ))
    limit=$((limit + t + 30))
    echo "$i $name $t" >>"$v/in/scenarios.list"
    names_g+="$name "
    i=$((i + 1))
  done
  limit=$((limit + extra_timeout))
  if [[ -n $left ]] && ((left < limit)); then limit=$left; fi
  vm_names[g]=$names_g vm_limit[g]=$limit
  tar -cf "$v/input.tar" -C "$v/in" .
  truncate -s 256M "$v/output.img"
  drives=(
    -drive if=none,id=root,file="$image/root.img",format=raw,snapshot=on
    -device virtio-blk-pci,drive=root
    -drive if=none,id=input,file="$v/input.tar",format=raw,readonly=on
    -device virtio-blk-pci,drive=input,serial=msb-input
    -drive if=none,id=output,file="$v/output.img",format=raw
    -device virtio-blk-pci,drive=output,serial=msb-output
  )
  for ((j = 0; j < i; j++)); do
    truncate -s 8G "$v/data$j.img"
    drives+=(-drive "if=none,id=data$j,file=$v/data$j.img,format=raw,cache=unsafe"
             -device "virtio-blk-pci,drive=data$j,serial=msb-data$j")
  done
  echo "run-vm-tests.sh: VM $g: ${names_g% } (about ${loads[g]} s of work, limit ${limit} s; console $v/console.log)"
  timeout -k 10 "$limit" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu "${MSB_VM_CPU:-max}" -smp "${MSB_VM_SMP:-1}" -m 2048 \
    -nodefaults -display none -no-reboot -serial file:"$v/console.log" \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 quiet panic=-1 systemd.firstboot=off mitigations=off" \
    "${drives[@]}" &
  vm_pid[g]=$!
done
rm -rf "$common"
echo "run-vm-tests.sh: ${#run[@]} scenario(s) in $parallel VM(s) (image $(cat "$image/key"))"

# Every VM is waited for; their results are read when all are done.
start=$SECONDS
declare -A vm_rc=() vm_secs=()
pending=$parallel
trap 'for p in "${vm_pid[@]}"; do kill "$p" 2>/dev/null; done' EXIT
while ((pending > 0)); do
  waiting=()
  for ((g = 0; g < parallel; g++)); do [[ -n ${vm_rc[$g]:-} ]] || waiting+=("${vm_pid[g]}"); done
  unset done_pid
  wait -n -p done_pid "${waiting[@]}" 2>/dev/null && rc=0 || rc=$?
  [[ -n ${done_pid:-} ]] || break
  for ((g = 0; g < parallel; g++)); do
    if [[ ${vm_pid[g]} == "$done_pid" ]]; then
      vm_rc[$g]=$rc vm_secs[$g]=$((SECONDS - start)); pending=$((pending - 1))
      echo "run-vm-tests.sh: VM $g stopped after ${vm_secs[$g]} s (qemu exit $rc)"
    fi
  done
done
trap - EXIT

report() { # NAME RC SECS SUMMARY LOG
  case $2 in
    0) passed=$((passed + 1)); printf 'PASS  %-28s %6s s  %s\n' "$1" "$3" "$4" ;;
    77) skipped+=("$1"); skip_reason[$1]="in the VM: $(tail -n1 "$5" 2>/dev/null)" ;;
    *) failed=$((failed + 1)); printf 'FAIL  %-28s %6s s  exit %s  %s\n' "$1" "$3" "$2" "$4"
       if [[ -f $5 ]]; then sed 's/^/      | /' <(tail -n 25 "$5"); fi ;;
  esac
}
for ((g = 0; g < parallel; g++)); do
  v=$work/vm$g
  rm -f "$v"/data*.img
  out=$v/results/out
  if ! tar -xf "$v/output.img" -C "$v/results" 2>/dev/null || [[ ! -f $out/exit-code ]]; then
    # No results disk (the VM was stopped by its limit or died): what its console says finished
    # still counts, the rest fails.
    echo "run-vm-tests.sh: VM $g left no results (qemu exit ${vm_rc[$g]:-?} after ${vm_secs[$g]:-?} s); console tail:" >&2
    tail -n 40 "$v/console.log" >&2 || true
    for name in ${vm_names[g]}; do
      rc=$(sed -n "s/^== $name exit \([0-9]*\)\r\?$/\1/p" "$v/console.log" 2>/dev/null | tail -n1)
      if [[ -n $rc ]]; then
        { grep -a "^\[$name\] " "$v/console.log" || true; } | sed "s/^\[$name\] //" >"$v/$name.log"
        report "$name" "$rc" "?" "(from the console)" "$v/$name.log"
      else
        failed=$((failed + 1)); printf 'FAIL  %-28s no result from the VM (not finished when it stopped)\n' "$name"
      fi
    done
    continue
  fi
  for name in ${vm_names[g]}; do
    d=$out/scenarios/$name
    rc=$(cat "$d/rc" 2>/dev/null || echo none)
    secs=$(cat "$d/elapsed" 2>/dev/null || echo "?")
    summary=$(cat "$d/summary" 2>/dev/null | tr "\n" " " || true)
    report "$name" "$rc" "$secs" "$summary" "$d/log"
  done
  [[ -f $out/journal.txt ]] && echo "run-vm-tests.sh: guest journal of VM $g's failed run: $out/journal.txt"
  echo "run-vm-tests.sh: VM $g ran ${vm_secs[$g]} s (system $(cat "$out/system-state" 2>/dev/null)); results in $out"
done
print_skips
((${#skipped[@]})) && echo "${#skipped[@]} skipped"
echo "$passed passed, $failed failed"
((failed == 0))
