#!/bin/sh
# parsers/build-grammar.sh — compiles one grammar (parser.c plus its C or C++ scanner) into one
# prelinked object that exports only tree_sitter_<name>: the Vue scanner embeds a copy of the HTML
# scanner, and hiding everything else is what lets both link into one binary.
# Usage: build-grammar.sh SYMBOL SRCDIR SCANNER(C|C++|none) OUT.o
set -eu
sym=$1 src=$2 scanner=$3 out=$4
tmp="$out.tmp.d"
rm -rf "$tmp"
mkdir -p "$tmp"
# Third-party generated code: its warnings must not fail our -Werror build.
${CC:-cc} -O2 -fPIC -w -std=gnu11 -I"$src" -c "$src/parser.c" -o "$tmp/parser.o"
objs="$tmp/parser.o"
case "$scanner" in
    C)
        ${CC:-cc} -O2 -fPIC -w -std=gnu11 -I"$src" -c "$src/scanner.c" -o "$tmp/scanner.o"
        objs="$objs $tmp/scanner.o"
        ;;
    C++)
        ${CXX:-c++} -O2 -fPIC -w -I"$src" -c "$src/scanner.cc" -o "$tmp/scanner.o"
        objs="$objs $tmp/scanner.o"
        ;;
esac
ld -r $objs -o "$tmp/all.o"
objcopy --keep-global-symbol="$sym" "$tmp/all.o" "$out"
rm -rf "$tmp"
echo "  grammar $sym"
