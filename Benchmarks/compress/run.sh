#!/bin/bash
# Compression throughput: GzipWriter, ParallelGzipWriter, gzip -6 and pigz -6 on the same
# half-compressible data. Prints figures only (never a pass/fail on timings).
#
# Usage: Benchmarks/compress/run.sh [SIZE_MIB=256] [SCRATCH_DIR=${TMPDIR:-/tmp}]
# Needs: swiftc, zlib headers (zlib1g-dev); gzip and pigz are optional contenders.
# Builds with `swiftc -O` straight from Sources/Streams (no package target, no dependencies),
# into .build-bench/ (ignored by git).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
size="${1:-256}"
scratch="${2:-${TMPDIR:-/tmp}}"
out="$repo/.build-bench"
mkdir -p "$out"

swiftc -O -swift-version 6 -module-name CompressBench \
    -I "$repo/Sources/CZlib" \
    "$here/main.swift" "$repo/Tests/Shared/SplitMix64.swift" \
    $(ls "$repo"/Sources/Streams/*.swift | grep -v '/MemberSpool.swift$') \
    -o "$out/compress-bench"

exec "$out/compress-bench" "$size" "$scratch"
