#!/bin/sh
# Installs the Debian packages fimd builds against, when missing (apt-get; sudo when not root).
# On a system without dpkg it only warns: the compiler will say what is missing.
missing=""
if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install-deps: no dpkg here; make sure these are installed: $*" >&2
    exit 0
fi
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq && $SUDO apt-get install -y -qq $missing >/dev/null || {
    echo "install-deps: could not install$missing" >&2
    exit 1
}
