#!/usr/bin/env python3
"""check-imports.py [PACKAGE_DIR]: every module a target's Swift files import is one the target
declares in Package.swift (a target by name, or a product of a package dependency), or a module of
the toolchain (Foundation, Glibc, Testing, ...). Exits 1 and names each file and import that is not.

SwiftPM builds every module into one folder, so `import X` compiles whenever X was built before,
declared or not (a module reached through another target, or a package's internal module such as
Yams' CYaml); `--explicit-target-dependency-import-check error` lets such imports through with
Swift 6.3 (with or without `-Xswiftc -explicit-module-build`, and with `--build-system swiftbuild`),
so this check is what keeps ARCHITECTURE.md's rule. It reads the targets from
`swift package dump-package` and every import line (`import`, `@_exported import`, `@testable import`,
`package import`, `import struct X.Y`, imports inside `#if`), comments left out.

A product dependency counts as the module of the same name (true of every product this package
uses: ArgumentParser, Subprocess, SystemPackage, Yams); a product with other module names would be
reported, never let through. `scripts/check-imports-test.sh` proves the check fails on bad imports.
"""
import json
import os
import re
import subprocess
import sys

# Modules of the toolchain and the platform: always there, never a package's.
SYSTEM = {
    "Swift", "_Concurrency", "_StringProcessing", "_Volatile", "Foundation", "FoundationEssentials",
    "FoundationInternationalization", "FoundationNetworking", "FoundationXML", "Glibc", "Musl",
    "Darwin", "Dispatch", "Synchronization", "Testing", "XCTest", "RegexBuilder", "Observation",
    "Distributed", "Cxx", "CxxStdlib", "Android", "Bionic", "WinSDK", "ucrt",
}

IMPORT = re.compile(
    r"^\s*(?:@[\w]+(?:\([^)]*\))?\s+)*"            # @_exported, @testable, @preconcurrency, @_implementationOnly, @_spi(X)
    r"(?:(?:public|package|internal|fileprivate|private)\s+)?"
    r"import\s+(?:(?:typealias|struct|class|enum|protocol|let|var|func)\s+)?"
    r"([A-Za-z_][A-Za-z0-9_]*)")


def strip_comments(text):
    """The source without comments (string literals are kept; an import line inside a multi-line
    string literal would be reported, which no file here has)."""
    out, i, n, depth = [], 0, len(text), 0
    in_string = False
    while i < n:
        c = text[i]
        if depth == 0 and not in_string and text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if not in_string and text.startswith("/*", i):
            depth += 1
            i += 2
            continue
        if depth > 0:
            if text.startswith("*/", i):
                depth -= 1
                i += 2
            else:
                if c == "\n":
                    out.append(c)
                i += 1
            continue
        if text.startswith('"""', i):
            in_string = not in_string
            out.append('"""')
            i += 3
            continue
        if c == '"' and not in_string:
            # A one-line string: copy it whole so a "//" inside is not a comment.
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def imports(path):
    with open(path, encoding="utf-8") as f:
        text = strip_comments(f.read())
    in_string = False
    for number, line in enumerate(text.split("\n"), 1):
        if line.count('"""') % 2 == 1:
            in_string = not in_string
            continue
        if in_string:
            continue
        m = IMPORT.match(line)
        if m:
            yield number, m.group(1), line.strip()


def declared(target):
    names = set()
    for d in target.get("dependencies", []):
        if "byName" in d:
            names.add(d["byName"][0])
        elif "target" in d:
            names.add(d["target"][0])
        elif "product" in d:
            names.add(d["product"][0])
    return names


def default_path(target):
    if target.get("path"):
        return target["path"]
    kind = target.get("type")
    if kind == "test":
        return "Tests/" + target["name"]
    if kind == "plugin":
        return "Plugins/" + target["name"]
    return "Sources/" + target["name"]


def swift_files(root, target):
    base = os.path.normpath(os.path.join(root, default_path(target)))
    excluded = [os.path.normpath(os.path.join(base, e)) for e in target.get("exclude") or []]
    wanted = target.get("sources")
    starts = [os.path.normpath(os.path.join(base, s)) for s in wanted] if wanted else [base]
    for start in starts:
        if start.endswith(".swift") and os.path.isfile(start):
            yield start
            continue
        for folder, dirs, files in os.walk(start):
            dirs[:] = sorted(d for d in dirs if os.path.join(folder, d) not in excluded)
            for name in sorted(files):
                p = os.path.join(folder, name)
                if name.endswith(".swift") and p not in excluded:
                    yield p


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
    dump = subprocess.run(["swift", "package", "--package-path", root, "dump-package"],
                          check=True, capture_output=True, text=True).stdout
    package = json.loads(dump)
    problems = []
    checked = 0
    for target in package["targets"]:
        if target.get("type") in ("system", "binary", "plugin", "macro"):
            continue
        allowed = declared(target) | SYSTEM | {target["name"]}
        for path in swift_files(root, target):
            checked += 1
            for number, module, line in imports(path):
                if module not in allowed:
                    problems.append(f"{os.path.relpath(path, root)}:{number}: target {target['name']} imports "
                                    f"{module}, which it does not declare in Package.swift: {line}")
    for p in problems:
        print("check-imports: " + p, file=sys.stderr)
    if problems:
        print(f"check-imports: {len(problems)} undeclared import(s) in {checked} files", file=sys.stderr)
        return 1
    print(f"check-imports: every import of {checked} files is declared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
