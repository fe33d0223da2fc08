#!/bin/sh
# tests/editors.sh — real clients drive fimd: Neovim (headless), Emacs + Eglot (batch) and a Node
# client on vscode-languageserver-protocol 3.18. Each types into a C buffer and must get the same
# completion text as `fimd complete` for that buffer and cursor. A client that is not installed is
# reported as skipped (`make test` installs them on Debian).
FIMD=$(cd "$(dirname "${FIMD_BIN:-build/fimd}")" && pwd)/$(basename "${FIMD_BIN:-build/fimd}")
T=$(mkdir -p "${FIMD_TMP:-/tmp/fimd-test}/editors" && cd "${FIMD_TMP:-/tmp/fimd-test}/editors" && pwd)
REPO=$(pwd)
pass=0; fail=0

M="$T/model.gguf"

# the buffer before typing (line 12 is blank, 8 spaces) and after typing "sum" there
cat > "$T/sample.c" <<'SRC'
#include <stdio.h>

/* 😀 a comment outside the BMP */
static int square(int x)
{
    return x * x;
}

int main(void)
{
    int total = 0;
    for (int i = 0; i < 10; i++) {
        
    }
    printf("%d\n", total);
    return 0;
}
SRC
sed '13s/^        $/        sum/' "$T/sample.c" > "$T/typed.c"
# A random model's greedy text depends on float rounding, so on the kernels this CPU runs: take the
# first seed whose completion here has a non-empty first line, or the ghost-text checks prove nothing.
for seed in 4 5 6 7 8 9 10 11 12 13 14 15; do
    $FIMD synth --like tiny --type Q8_0 --merges-from tests/data/ds2.c --merges-from tests/data/tokenizer.c \
        --merges 400 --seed $seed -o "$M" || { echo "FAIL: synth"; echo "0 passed, 1 failed"; exit 1; }
    $FIMD complete -m "$M" "$T/typed.c" --line 12 --character 11 > "$T/expect.txt" || { echo "FAIL: fimd complete"; fail=$((fail + 1)); }
    [ -n "$(head -n 1 "$T/expect.txt")" ] && break
done
echo "expected completion (model seed $seed): [$(cat "$T/expect.txt")]"
[ -n "$(head -n 1 "$T/expect.txt")" ] || { echo "FAIL: no seed gives a completion here"; fail=$((fail + 1)); }

export FIMD_BIN="$FIMD" FIMD_MODEL="$M" FIMD_FILE="$T/sample.c" FIMD_EXPECT="$T/expect.txt"

add() { # add the "N passed, N failed" line of a client's output
    line=$(printf '%s\n' "$1" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then fail=$((fail + 1)); echo "FAIL: $2 printed no result"; return; fi
    pass=$((pass + ${line%% passed*})); f=${line#*passed, }; fail=$((fail + ${f%% failed*}))
}

cp "$T/sample.c" "$T/pristine.c"
if command -v nvim >/dev/null 2>&1; then
    cp "$T/pristine.c" "$T/sample.c"
    out=$(cd "$T" && timeout 120 nvim --headless --clean -u NONE -c "luafile $REPO/tests/editors/nvim_test.lua" 2>&1)
    printf '%s\n' "$out" | sed 's/^/  nvim: /'
    add "$out" nvim
    cp "$T/pristine.c" "$T/sample.c"
    out=$(cd "$T" && FIMD_REPO="$REPO" timeout 120 nvim --headless --clean -u NONE -c "luafile $REPO/tests/editors/nvim_plugin_test.lua" 2>&1)
    printf '%s\n' "$out" | sed 's/^/  nvim plugin: /'
    add "$out" "nvim plugin"
else
    echo "skipped: Neovim (nvim not installed)"
fi

if command -v emacs >/dev/null 2>&1 && [ -d /usr/share/emacs/site-lisp/elpa ] && ls /usr/share/emacs/site-lisp/elpa | grep -q eglot; then
    cp "$T/pristine.c" "$T/sample.c"
    out=$(timeout 120 emacs --batch -Q -l tests/editors/eglot_test.el 2>&1 | grep -vE '^(Loading|Connected|\[eglot\]|Starting|Server)')
    printf '%s\n' "$out" | sed 's/^/  emacs: /'
    add "$out" emacs
    cp "$T/pristine.c" "$T/sample.c"
    out=$(FIMD_REPO="$REPO" timeout 120 emacs --batch -Q -l tests/editors/fimd_el_test.el 2>&1 | grep -vE '^(Loading|Connected|\[eglot\]|Starting|Server)')
    printf '%s\n' "$out" | sed 's/^/  fimd.el: /'
    add "$out" fimd.el
else
    echo "skipped: Emacs + Eglot (emacs-nox and elpa-eglot not installed)"
fi

if command -v node >/dev/null 2>&1 && [ -d tests/editors/node/node_modules/vscode-languageserver-protocol ]; then
    cp "$T/pristine.c" "$T/sample.c"
    out=$(timeout 120 node --test tests/editors/node/client.test.cjs 2>&1)
    printf '%s\n' "$out" | grep -E '^(not ok|ok|# (pass|fail))|Error|assert' | sed 's/^/  node: /'
    np=$(printf '%s\n' "$out" | sed -n 's/^# pass //p'); nf=$(printf '%s\n' "$out" | sed -n 's/^# fail //p')
    if [ -n "$np" ] && [ -n "$nf" ]; then pass=$((pass + np)); fail=$((fail + nf)); else fail=$((fail + 1)); echo "FAIL: node printed no result"; fi
else
    echo "skipped: Node client (node or npm packages not installed)"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
