#!/bin/sh
# tests/bundled.sh — the model that ships with fimd: it is found with no model configured (the
# commands, and the server, which says so in fimd/status), and it writes real code at fixed cursors
# of files no corpus holds: a call's closing ")", a loop header's increment, a call on a local name,
# Go's error return. bench-quality runs on it.
FIMD=${FIMD_BIN:-build/fimd}
T=${FIMD_TMP:-/tmp/fimd-test}/bundled
D=$(dirname "$0")/bundled
W=$(dirname "$0")/../weights/fimd-tiny-code.gguf
mkdir -p "$T"
unset FIMD_MODEL
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

if [ ! -f "$W" ]; then
    bad "weights/fimd-tiny-code.gguf is missing"
    echo "$pass passed, $fail failed"
    exit 1
fi

# the file: a deepseek2 model with the FIM tokens, whose context fimd fits prompts to
$FIMD info -m "$W" >"$T/info.txt" 2>&1 || bad "fimd info on the bundled model"
grep -q "deepseek2" "$T/info.txt" && ok || bad "bundled model is not deepseek2: $(head -3 "$T/info.txt")"

# complete at FILE LINE CHARACTER with no -m: the bundled model; the completion must match REGEX
expect() {
    out=$($FIMD complete "$D/$1" --line "$2" --character "$3" 2>"$T/err.txt")
    rc=$?
    first=$(printf '%s\n' "$out" | head -n 1)
    if [ $rc -ne 0 ]; then
        bad "$1:$2:$3: exit $rc: $(cat "$T/err.txt")"
    elif printf '%s' "$first" | grep -Eq "$4"; then
        ok
    else
        bad "$1:$2:$3: expected /$4/, got: $out"
    fi
}
expect call.go 5 20 '^\)$'
expect loop.c 5 30 '^(i\+\+|\+\+i)\) \{'
expect defined.py 10 16 '^[a-z_]+\(path\)$'
expect errcheck.go 10 2 '^return nil'

# found under an install prefix too (bin/fimd -> share/fimd/), as `make install` lays it out
P="$T/prefix"
rm -rf "$P" && mkdir -p "$P/bin" "$P/share/fimd" && cp "$FIMD" "$P/bin/fimd" && cp "$W" "$P/share/fimd/"
out=$("$P/bin/fimd" complete "$D/call.go" --line 5 --character 20 2>"$T/err.txt") && ok \
    || bad "installed fimd did not find share/fimd/fimd-tiny-code.gguf: $(cat "$T/err.txt")"
rm -f "$P/share/fimd/fimd-tiny-code.gguf"
"$P/bin/fimd" complete "$D/call.go" --line 5 --character 20 >/dev/null 2>"$T/err.txt" && bad "completed with no model at all" \
    || { grep -q "usage\|model" "$T/err.txt" && ok || bad "no model: unclear message: $(cat "$T/err.txt")"; }

# the server with no model configured: the bundled one, said so in fimd/status (through fimd demo)
$FIMD demo >"$T/demo.txt" 2>&1 || bad "fimd demo with the bundled model: $(tail -5 "$T/demo.txt")"
grep -q "ready" "$T/demo.txt" && ok || bad "demo: the bundled model did not load"
grep -q "bundled small model" "$T/demo.txt" && ok || bad "demo: fimd/status does not say the model is the bundled one"
grep -q "ghost text: [^(]" "$T/demo.txt" && ok || bad "demo: no ghost text"

# bench-quality: one held-out file per language, JSON with every cursor kind
H=$(dirname "$0")/../tools/quality/heldout
$FIMD bench-quality --json "$H/c/vec__vec.c" "$H/go/goawk__resolve.go" "$H/python/minbpe__base.py" >"$T/q.json" 2>"$T/q.err" \
    || bad "bench-quality: $(cat "$T/q.err")"
for key in '"line_rest"' '"next_line"' '"block"' '"C"' '"Go"' '"Python"' '"edit_similarity"'; do
    grep -q "$key" "$T/q.json" && ok || bad "bench-quality JSON lacks $key: $(cat "$T/q.json")"
done
$FIMD bench-quality --budget 12 "$H/c/vec__vec.c" >/dev/null 2>&1 && bad "bench-quality accepted --budget 12" || ok
$FIMD bench-quality "$T/no-such-file.c" >/dev/null 2>&1 && bad "bench-quality accepted a missing file" || ok

# bench-typing --accept: a user who accepts every ghost text, one row per feature and all of them,
# the same text accepted in every row; a switched-off feature has no row
$FIMD bench-typing "$H/c/vec__vec.c" --line 30 --lines 2 --n-predict 8 --accept --json >"$T/acc.json" 2>"$T/acc.err" \
    || bad "bench-typing --accept: $(cat "$T/acc.err")"
for key in '"mode":"off"' '"mode":"type-through"' '"mode":"prefetch"' '"mode":"drafts"' '"mode":"all"' \
    '"same_replay":true'; do
    grep -q "$key" "$T/acc.json" && ok || bad "bench-typing --accept JSON lacks $key: $(cat "$T/acc.json")"
done
grep -Eq '"mode":"type-through","events":[0-9]+,"p50_ms":[0-9.]+,"p90_ms":[0-9.]+,"type_through_hits":[1-9]' "$T/acc.json" \
    && ok || bad "bench-typing --accept: no type-through hits: $(cat "$T/acc.json")"
grep -Eq '"mode":"off",[^}]*"prefetch_hits":0,"model_completions":[1-9]' "$T/acc.json" \
    && ok || bad "bench-typing --accept: the off row did not run the model: $(cat "$T/acc.json")"
$FIMD bench-typing "$H/c/vec__vec.c" --line 30 --lines 2 --n-predict 8 --accept --json --no-drafts --no-prefetch \
    >"$T/acc2.json" 2>/dev/null || bad "bench-typing --accept --no-drafts --no-prefetch failed"
grep -q '"mode":"drafts"\|"mode":"prefetch"\|"mode":"all"' "$T/acc2.json" \
    && bad "switched-off features still have rows: $(cat "$T/acc2.json")" || ok

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
