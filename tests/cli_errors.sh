#!/bin/sh
# tests/cli_errors.sh — fimd's command line on bad input: each case must exit with status 1 (2 for
# usage errors) and say what is wrong on stderr, never die by a signal; plus the formats other
# tools script against (ids on one line, logits files, info's cache bytes on a Lite-shaped model).
FIMD=${FIMD_BIN:-build/fimd}
T=${FIMD_TMP:-/tmp/fimd-test}/cli
mkdir -p "$T"
pass=0; fail=0

ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect STATUS WORDS-IN-STDERR -- command...
expect() {
    want=$1; words=$2; shift 2
    "$@" >"$T/out" 2>"$T/err" </dev/null; rc=$?
    if [ $rc -ne "$want" ]; then bad "$* -> exit $rc, wanted $want ($(head -c 200 "$T/err"))"; return; fi
    if [ -n "$words" ] && ! grep -qi -- "$words" "$T/err"; then bad "$* -> stderr lacks '$words': $(head -c 200 "$T/err")"; return; fi
    ok
}

M="$T/tiny.gguf"
$FIMD synth --like tiny --type Q8_0 --merges-from tests/data/tokenizer.c --seed 3 -o "$M" || bad "synth tiny"

# usage and arguments
expect 2 "unknown command" $FIMD frobnicate
expect 1 "required" $FIMD tokenize
expect 1 "unknown option" $FIMD tokenize -m "$M" --bogus
expect 1 "No such file" $FIMD tokenize -m "$T/none.gguf" /dev/null
expect 1 "No such file" $FIMD tokenize -m "$M" "$T/missing.txt"
expect 1 "required" $FIMD logits -m "$M" --tokens "1 2"
expect 1 "malformed" $FIMD logits -m "$M" --tokens "1 x 2" -o "$T/l.f32"
expect 1 "no token ids" $FIMD logits -m "$M" --tokens "  " -o "$T/l.f32"
expect 1 "outside the vocabulary" $FIMD logits -m "$M" --tokens "1 999999" -o "$T/l.f32"
expect 1 "positive" $FIMD logits -m "$M" --tokens "1 2" --chunk 0 -o "$T/l.f32"
expect 1 "malformed" $FIMD generate -m "$M" --tokens "-5" -n 3
expect 1 "outside the vocabulary" $FIMD generate -m "$M" --tokens "3 100000" -n 3
expect 1 "-n" $FIMD generate -m "$M" --tokens "1"
expect 1 "outside the vocabulary" $FIMD detokenize -m "$M" 5 7000000
expect 1 "not a token id" $FIMD detokenize -m "$M" abc
expect 1 "no tensor named" $FIMD tensor -m "$M" no.such.tensor -o "$T/t.f32"
expect 1 "unknown or unusable" $FIMD synth --type Q7_K -o "$T/x.gguf"
# the test programs' case names (make check): an unknown one lists the valid ones
TESTS=$(dirname "$FIMD")/tests
[ -x "$TESTS/test_fim" ] && expect 2 "the cases are: stop_rules" "$TESTS/test_fim" no_such_case
expect 1 "unknown or unusable" $FIMD synth --type IQ2_XXS -o "$T/x.gguf"
expect 1 "unknown --like" $FIMD synth --like huge -o "$T/x.gguf"
expect 1 "invalid" $FIMD synth --like tiny --qk-rope 7 -o "$T/x.gguf"
expect 1 "experts" $FIMD synth --like tiny --experts-used 99 -o "$T/x.gguf"

# damaged files through the CLI
head -c 100 "$M" > "$T/trunc.gguf"
expect 1 "truncated" $FIMD info -m "$T/trunc.gguf"
printf 'GGML\003\000\000\000' > "$T/magic.gguf"; cat "$M" | tail -c +9 >> "$T/magic.gguf"
expect 1 "magic" $FIMD info -m "$T/magic.gguf"
head -c 1000000 /dev/urandom > "$T/random.gguf"
expect 1 "" $FIMD info -m "$T/random.gguf"
expect 1 "not a regular file" $FIMD info -m /dev

# formats
ids=$(printf 'int main(void) { return 0; }\n' | $FIMD tokenize -m "$M")
case "$ids" in [0-9]*" "[0-9]*) ok ;; *) bad "tokenize prints ids on one line: '$ids'" ;; esac
text=$($FIMD detokenize -m "$M" $(printf 'int main(void) { return 0; }' | $FIMD tokenize -m "$M" --no-bos))
[ "$text" = "int main(void) { return 0; }" ] && ok || bad "detokenize(tokenize(x)) = x: '$text'"
$FIMD logits -m "$M" --tokens "$ids" -o "$T/one.f32" && $FIMD logits -m "$M" --tokens "$ids" --chunk 7 -o "$T/chunk.f32" \
    && cmp -s "$T/one.f32" "$T/chunk.f32" && ok || bad "--chunk 7 writes the same logits as one-shot"
n=$(echo $ids | wc -w); size=$(wc -c < "$T/one.f32"); nv=$($FIMD info -m "$M" | sed -n 's/^vocab: //p')
[ "$size" -eq $((n * nv * 4)) ] && ok || bad "logits file is n_pos x n_vocab x 4 bytes ($size vs $n x $nv x 4)"
g=$($FIMD generate -m "$M" --tokens "$ids" -n 5)
[ $(echo $g | wc -w) -eq 5 ] && ok || bad "generate prints 5 ids: '$g'"

# must-show 7: a Lite-shaped synth reports (512 + 64) x n_layer x 4 bytes of f32 cache per token
L="$T/lite1.gguf"
$FIMD synth --like lite --layers 1 --type Q4_0 --merges 0 -o "$L" || bad "synth lite-shaped"
line=$($FIMD info -m "$L" | grep "latent cache")
case "$line" in *"(512 + 64) x 1 layers x 4 bytes (f32) = 2304 bytes per token"*) ok ;; *) bad "info cache line: $line" ;; esac
rm -f "$L"

# the benchmarks' --json objects carry the keys other tools compare runs by
j=$($FIMD bench -m "$M" -p 8 -n 4 --json)
for k in prompt_tps decode_tps decode_after_prompt_tps gbps bandwidth_gbps peak_rss_mb; do
    case "$j" in *"\"$k\":"*) ok ;; *) bad "bench --json lacks $k: $j" ;; esac
done
printf 'int main(void)\n{\n    return 0;\n}\n' > "$T/typing.c"
j=$($FIMD bench-typing -m "$M" "$T/typing.c" --line 2 --lines 1 --n-predict 2 --json)
for k in requests p50_ms p95_ms evaluated_per_request reuse_ratio; do
    case "$j" in *"\"$k\":"*) ok ;; *) bad "bench-typing --json lacks $k: $j" ;; esac
done
expect 1 "-p" $FIMD bench -m "$M" -p 0

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
