#!/bin/sh
# Runs each test program (or shell test) as its own process with a timeout, echoes its output,
# and adds up the "N passed, N failed" lines. The last line is the total.
pass=0; fail=0; crashed=""
mkdir -p "${FIMD_TMP:-/tmp/fimd-test}"
for t in "$@"; do
    echo "== $t"
    case "$t" in *.sh) cmd="sh $t" ;; *) cmd="$t" ;; esac
    out=$(timeout "${FIMD_TEST_TIMEOUT:-900}" $cmd 2>&1); rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        fail=$((fail + 1)); crashed="$crashed $t(rc=$rc)"
        continue
    fi
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    pass=$((pass + p)); fail=$((fail + f))
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && { fail=$((fail + 1)); crashed="$crashed $t(rc=$rc)"; }
done
[ -n "$crashed" ] && echo "crashed or exited badly:$crashed"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
