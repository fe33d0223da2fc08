#!/bin/sh
# tests/context_cli.sh — the syntax-aware context from the command line: `fimd context` prints the
# exact prompt within --budget with the definition an --open file offers, `fimd complete
# --assume-output` runs the stop rules and post-processing on given text, `fimd languages`
# detects; and each of them rejects bad input with a message and status 1.
FIMD=${FIMD_BIN:-build/fimd}
T=${FIMD_TMP:-/tmp/fimd-test}/context
mkdir -p "$T"
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

M="$T/tiny.gguf"
$FIMD synth --like tiny --type Q8_0 --merges-from tests/data/syntax.c --seed 3 -o "$M" || bad "synth tiny"

cat >"$T/util.c" <<'C'
#include <stdio.h>

/* Adds two integers. */
int add_numbers(int a, int b)
{
    return a + b;
}

static int never_used_here(void)
{
    return 42;
}
C
cat >"$T/main.c" <<'C'
#include "util.h"

int main(void)
{
    int total = add_numbers(1, 2);
    
    return total;
}
C

# the prompt: markers as text, the called function's definition from the open file, in budget
$FIMD context -m "$M" "$T/main.c" --line 5 --character 4 --open "$T/util.c" --budget 1200 --stats \
    >"$T/prompt" 2>"$T/stats"
check '[ $? -eq 0 ]' "context exits 0"
check 'grep -q "<｜fim▁hole｜>" "$T/prompt" && grep -q "<｜fim▁begin｜>" "$T/prompt"' "special tokens printed as text"
check 'grep -q "int add_numbers(int a, int b)" "$T/prompt"' "the --open file's definition is in the prompt"
check '! grep -q never_used_here "$T/prompt"' "a definition not named near the cursor is not"
n=$(sed -E 's/^([0-9]+) tokens.*/\1/' "$T/stats")
check '[ "$n" -le 1200 ] && [ "$n" -gt 20 ]' "prompt within --budget 1200 ($n tokens)"
$FIMD context -m "$M" "$T/main.c" --line 5 --character 4 --open "$T/util.c" --budget 40 --stats >/dev/null 2>"$T/stats"
n=$(sed -E 's/^([0-9]+) tokens.*/\1/' "$T/stats")
check '[ "$n" -le 40 ]' "prompt within --budget 40 ($n tokens)"
check 'grep -q "multi-line" "$T/stats"' "a blank line in a body is multi-line"

# the stop rules without weights: a run-on output is cut where its block ends
printf 'printf("%%d\\n", total);\n    return total;\n}\n\nint extra(void)\n{\n' >"$T/out.txt"
$FIMD complete -m "$M" "$T/main.c" --line 5 --character 4 --assume-output "$T/out.txt" --stats >"$T/got" 2>"$T/stats"
check '[ "$(cat "$T/got")" = "printf(\"%d\\n\", total);" ]' "assume-output: run-on cut at the suffix's repeat ($(cat "$T/got"))"
check 'grep -q "stop: suffix_repeat" "$T/stats"' "assume-output reports the stop ($(cat "$T/stats"))"
printf ', 3);\n' >"$T/one.txt"
$FIMD complete -m "$M" "$T/main.c" --line 4 --character 32 --assume-output "$T/one.txt" >"$T/got" 2>/dev/null
check '[ "$(cat "$T/got")" = ", 3" ]' "assume-output: a closer the suffix has is dropped ($(cat "$T/got"))"

# a Python document indented with tabs, a middle with spaces: a loop, then the return
printf 'def total(xs):\n\ts = 0\n\t\n\nprint(total([1, 2]))\n' >"$T/tabs.py"
printf 'for x in xs:\n        s += x\n    return s\n\ndef other():\n    pass\n' >"$T/py.txt"
$FIMD complete -m "$M" "$T/tabs.py" --line 2 --character 1 --assume-output "$T/py.txt" --stats >"$T/got" 2>"$T/stats"
check '[ "$(cat "$T/got")" = "$(printf "for x in xs:\n\t\ts += x\n\treturn s")" ]' "assume-output: tabs, and the return after the loop kept ($(cat "$T/got"))"
check 'grep -q "stop: indent" "$T/stats"' "assume-output: the dedent below the cursor ends it ($(cat "$T/stats"))"

# detection
check '[ "$($FIMD languages --detect x/Makefile)" = "$(printf "Makefile\tmake")" ]' "detect Makefile"
check '[ "$($FIMD languages | wc -l)" -ge 338 ]' "the registry lists 338 languages or more"
check '[ "$($FIMD languages --grammars | wc -l)" -ge 45 ]' "45 grammars or more are compiled in"

# bad input
expect() {
    want=$1; words=$2; shift 2
    "$@" >"$T/out" 2>"$T/err" </dev/null; rc=$?
    if [ $rc -ne "$want" ]; then bad "$* -> exit $rc, wanted $want ($(head -c 200 "$T/err"))"; return; fi
    if ! grep -qi -- "$words" "$T/err"; then bad "$* -> stderr lacks '$words': $(head -c 200 "$T/err")"; return; fi
    ok
}
expect 1 "usage" $FIMD context -m "$M" "$T/main.c"
expect 1 "No such file" $FIMD context -m "$M" "$T/main.c" --line 1 --character 0 --open "$T/none.c"
expect 1 "No such file" $FIMD context -m "$T/none.gguf" "$T/main.c" --line 1 --character 0
expect 1 "--budget" $FIMD context -m "$M" "$T/main.c" --line 1 --character 0 --budget 3
expect 1 "No such file" $FIMD complete -m "$M" "$T/main.c" --line 1 --character 0 --assume-output "$T/none.txt"
expect 1 "no language" $FIMD languages --detect "$T/unknown.zzz"
expect 1 "usage" $FIMD bench-context -m "$M" "$T/main.c"
expect 1 "unknown option" $FIMD bench-context -m "$M" --budget 512 --bogus "$T/main.c"
head -c 3000 /dev/urandom >"$T/binary.c"
$FIMD context -m "$M" "$T/binary.c" --line 3 --character 5 --budget 100 >/dev/null 2>&1
check '[ $? -eq 0 ]' "a binary file still gives a prompt"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
