#!/bin/sh
# tools/logits-cmp.sh — are two fimd builds' logits byte-identical? Runs `fimd logits` of both on
# every fixture model (and the bundled one) for each fixture prompt, in five configurations
# (default, --chunk 3, scalar kernels, AVX2 kernels, sgemm prefill), and `cmp`s the outputs.
# Usage: tools/logits-cmp.sh OLD_FIMD NEW_FIMD [FIXTURES_DIR]; exit 0 when all are identical.
set -u
old=$1 new=$2
fx=${3:-"$(dirname "$0")/../../shared/fixtures"}
[ -d "$fx/models" ] || { echo "logits-cmp: no fixtures at $fx" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prompts=$(ls "$fx"/models/*/prompts.txt | head -n 1)
same=0 diff=0
run() { # config-name env... -- model prompt-ids
    name=$1
    shift
    envs=""
    while [ "$1" != "--" ]; do envs="$envs $1"; shift; done
    shift
    model=$1 ids=$2 extra=""
    [ "$name" = chunk3 ] && extra="--chunk 3"
    for b in old new; do
        eval "bin=\$$b"
        env $envs "$bin" logits -m "$model" --tokens "$ids" $extra -o "$tmp/$b.f32" 2>"$tmp/$b.err" ||
            { echo "logits-cmp: $b failed on $model: $(cat "$tmp/$b.err")" >&2; diff=$((diff + 1)); return; }
    done
    if cmp -s "$tmp/old.f32" "$tmp/new.f32"; then same=$((same + 1)); else
        echo "DIFFERENT: $name $model [$ids]"
        diff=$((diff + 1))
    fi
}
for model in "$fx"/models/*/model.gguf "$(dirname "$0")/../weights/fimd-tiny-code.gguf"; do
    [ -f "$model" ] || continue
    # the bundled model has its own vocabulary: give it short prompts within it
    p=$(dirname "$model")/prompts.txt
    [ -f "$p" ] || p=$prompts
    while IFS= read -r ids; do
        [ -n "$ids" ] || continue
        run default -- "$model" "$ids"
        run chunk3 -- "$model" "$ids"
        run scalar FIMD_KERNELS=scalar -- "$model" "$ids"
        run avx2 FIMD_KERNELS=avx2 -- "$model" "$ids"
        run sgemm FIMD_SGEMM=1 -- "$model" "$ids"
    done <"$p"
done
echo "logits-cmp: $same identical, $diff different or failed"
[ "$diff" -eq 0 ]
