#!/bin/sh
# tests/vsix.sh — `make vsix` builds the VS Code extension package, and its manifest activates the
# extension for every file (at startup), points at a script that is in the package and parses, and
# bundles the language client library.
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null)" -lt 20 ]; then
    echo "skipped: make vsix (needs Node 20 or newer)"
    echo "0 passed, 0 failed"
    exit 0
fi
V=$(dirname "${FIMD_BIN:-build/fimd}")/fimd.vsix
make -s vsix BUILD="$(dirname "${FIMD_BIN:-build/fimd}")" >/dev/null 2>&1 || bad "make vsix failed"
[ -f "$V" ] && ok || bad "no $V"
manifest=$(unzip -p "$V" extension/package.json 2>/dev/null)
printf '%s' "$manifest" | node -e '
    const m = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const ev = m.activationEvents || [];
    if (!(ev.includes("onStartupFinished") || ev.includes("*"))) { console.error("activationEvents: " + ev); process.exit(1); }
    if (m.main !== "./extension.js") process.exit(2);
    if (!m.contributes.configuration.properties["fimd.model"]) process.exit(3);' && ok || bad "manifest does not activate on all files"
unzip -p "$V" extension/extension.js > "${FIMD_TMP:-/tmp}/fimd-extension.js" 2>/dev/null
node --check "${FIMD_TMP:-/tmp}/fimd-extension.js" && ok || bad "extension.js missing or does not parse"
grep -q "documentSelector: \[{ scheme: 'file' }, { scheme: 'untitled' }\]" "${FIMD_TMP:-/tmp}/fimd-extension.js" && ok || bad "the client is not registered for all files"
unzip -l "$V" | grep -q "extension/node_modules/vscode-languageclient/package.json" && ok || bad "vscode-languageclient not bundled"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
