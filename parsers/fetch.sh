#!/bin/sh
# parsers/fetch.sh — fetches the grammars of a lock file from the npm registry (private npm cache,
# so a fresh machine behaves like a warm one), checks each tarball's sha256 and each parser's ABI
# (13 or 14: what Debian's libtree-sitter loads), unpacks the sources and writes OUT/grammars.mk
# (one prelinked object per grammar) and OUT/grammars.inc (the X-macro list parsers/ includes).
# Usage: fetch.sh LOCK OUT
set -eu
lock=$1
out=$2
mkdir -p "$out/tgz" "$out/src" "$out/obj"
mk="$out/grammars.mk.tmp"
inc="$out/grammars.inc.tmp"
: >"$mk"
: >"$inc"
objs=""
cxx=0
grep -v '^#' "$lock" | while IFS='	' read -r name version sha grammars; do
    [ -n "$name" ] || continue
    base=$(echo "$name" | sed 's/^@//; s#/#-#')
    tgz="$out/tgz/$base-$version.tgz"
    if [ ! -f "$tgz" ] || ! echo "$sha  $tgz" | sha256sum -c --status; then
        rm -f "$tgz"
        (cd "$out/tgz" && npm pack --silent --cache "$PWD/../npm-cache" "$name@$version" >/dev/null) || {
            echo "fetch.sh: npm pack $name@$version failed" >&2
            exit 1
        }
    fi
    echo "$sha  $tgz" | sha256sum -c --status || {
        echo "fetch.sh: checksum mismatch for $name@$version" >&2
        exit 1
    }
    dir="$out/src/$base-$version"
    if [ ! -f "$dir/.unpacked" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        tar -xzf "$tgz" -C "$dir" --strip-components=1 --exclude='*.wasm' --exclude='*.node' \
            --exclude='prebuilds/*' --exclude='bindings/*' --exclude='*/test/*' --exclude='queries/*' --exclude='examples/*' --exclude='docs/*'
        touch "$dir/.unpacked"
    fi
    echo "$grammars" | tr ',' '\n' | while IFS=: read -r sym sub scanner; do
        src="$dir/$sub"
        abi=$(sed -n 's/^#define LANGUAGE_VERSION \([0-9]*\).*/\1/p' "$src/parser.c")
        case "$abi" in
            13 | 14) ;;
            *)
                echo "fetch.sh: $name@$version $sym has ABI '$abi'; Debian's libtree-sitter loads 13-14" >&2
                exit 1
                ;;
        esac
        obj="\$(GRAMMAR_DIR)/obj/$sym.o"
        printf 'GRAMMAR_OBJS += %s\n' "$obj" >>"$mk"
        [ "$scanner" = "C++" ] && printf 'GRAMMAR_NEEDS_CXX := 1\n' >>"$mk"
        printf '%s: %s\n\t@sh parsers/build-grammar.sh %s %s %s $@\n' "$obj" "$src/parser.c" "$sym" "$src" "$scanner" >>"$mk"
        printf 'GRAMMAR(%s)\n' "${sym#tree_sitter_}" >>"$inc"
    done
done
mv "$mk" "$out/grammars.mk"
mv "$inc" "$out/grammars.inc"
echo "fetch.sh: $(grep -c '^GRAMMAR(' "$out/grammars.inc") grammars ready in $out"
