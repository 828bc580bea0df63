#!/usr/bin/env bash
# check-imports-test.sh: proves scripts/check-imports.py fails on an undeclared import. On copies of
# Tests/Fixtures/import-check (C depends on B, B on A), each bad import below must make the check
# exit 1 naming the file and the module, and the fixture as it is must pass.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
check="$here/scripts/check-imports.py"
fixture="$here/Tests/Fixtures/import-check"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0

run() {  # run NAME FILE LINE: the fixture with LINE added to FILE must fail the check
    local name=$1 file=$2 line=$3 copy="$work/$1"
    cp -r "$fixture" "$copy"
    printf '%b\n' "$line" >>"$copy/$file"
    if out=$(python3 "$check" "$copy" 2>&1); then
        echo "check-imports-test: FAIL: $name was accepted"; failed=1
    elif ! grep -q "$file:.*imports A, which it does not declare" <<<"$out"; then
        echo "check-imports-test: FAIL: $name: the check did not name $file and A:"; echo "$out"; failed=1
    else
        echo "check-imports-test: ok: $name fails the check"
    fi
}

cp -r "$fixture" "$work/clean"
if out=$(python3 "$check" "$work/clean" 2>&1); then
    echo "check-imports-test: ok: the fixture as it is passes"
else
    echo "check-imports-test: FAIL: the clean fixture was refused:"; echo "$out"; failed=1
fi
run transitive Sources/C/C.swift 'import A'
run exported Sources/C/C.swift '@_exported import A'
run package-import Sources/C/C.swift 'package import A'
run declaration Sources/C/C.swift 'import struct A.Thing'
run conditional Sources/C/C.swift '#if canImport(A)\nimport A\n#endif'
run testable Tests/CTests/CTests.swift '@testable import A'
exit $failed
