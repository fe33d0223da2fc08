#!/bin/sh
# Checks that fimd's C sources are as clang-format (.clang-format) leaves them: one check per file.
# The file list comes from the Makefile (FIMD_FORMAT_SRC), the same one `make format` rewrites.
pass=0; fail=0
if ! command -v clang-format >/dev/null 2>&1; then echo "skipped: clang-format is not installed"; echo "0 passed, 0 failed"; exit 0; fi
[ -n "$FIMD_FORMAT_SRC" ] || { echo "FIMD_FORMAT_SRC is empty: run through make test"; echo "0 passed, 1 failed"; exit 1; }
for f in $FIMD_FORMAT_SRC; do
    if clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then pass=$((pass + 1))
    else fail=$((fail + 1)); echo "FAIL: $f is not formatted (make format)"; fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
