#!/usr/bin/env bash
# Translate a corpus in N shards, JOBS at a time on this machine, with a saved map; then merge.
#
#   SRC=x.h5 MAP=map.safetensors N=8 JOBS=4 bash parallel.sh        # writes parts/ and merged.h5
#
# The one-liner at its heart (GNU parallel):
#   parallel -j 4 relcli translate --src x.h5 --map map.safetensors --shard {}/8 -q -o parts/part{}-of-8.h5 ::: $(seq 0 7)
#   relcli merge parts/part*-of-8.h5 -o merged.h5
# Without GNU parallel (it is not installed everywhere; `parallel` from moreutils is another tool),
# the script says so on stderr and runs the same jobs with `xargs -P` (set USE_XARGS=1 to force that).
#
# Fit the map once before (small: only the anchors are translated), or give SRC_ANCHORS and
# TGT_ANCHORS and the script fits it when MAP does not exist yet:
#   relcli translate --src xa.h5 --tgt-anchors ya.h5 --save-map map.safetensors -o xa_in_y.h5
#
# Variables: SRC (required), MAP (required), N (shards, 8), JOBS (concurrent jobs, number of CPUs),
# OUT (folder of the shards, parts), MERGED (merged.h5; .safetensors for a copy), RELCLI (relcli),
# SRC_ANCHORS, TGT_ANCHORS, METHOD (auto) to fit the map. Give each job --device cuda:K, or
# RELCLI_DEVICE, to spread shards over GPUs. A failed shard stops the run (exit non-zero); rerun
# it alone with `relcli translate ... --shard I/N` and merge again.
set -euo pipefail

: "${SRC:?set SRC to the embeddings to translate}"
: "${MAP:?set MAP to a map saved by relcli translate --save-map}"
N=${N:-8}
JOBS=${JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
OUT=${OUT:-parts}
MERGED=${MERGED:-merged.h5}
RELCLI=${RELCLI:-relcli}

mkdir -p "$OUT"
if [ ! -e "$MAP" ]; then
    : "${SRC_ANCHORS:?$MAP does not exist: fit it first, or set SRC_ANCHORS and TGT_ANCHORS}"
    : "${TGT_ANCHORS:?$MAP does not exist: fit it first, or set SRC_ANCHORS and TGT_ANCHORS}"
    $RELCLI translate --src "$SRC_ANCHORS" --tgt-anchors "$TGT_ANCHORS" --method "${METHOD:-auto}" \
        --save-map "$MAP" -o "$OUT/anchors_translated.h5"
fi

if [ -z "${USE_XARGS:-}" ] && parallel --version 2>/dev/null | grep -q "GNU parallel"; then
    parallel --quote --halt now,fail=1 -j "$JOBS" \
        $RELCLI translate --src "$SRC" --map "$MAP" --shard {}/"$N" -q -o "$OUT/part{}-of-$N.h5" ::: $(seq 0 $((N - 1)))
else
    echo "parallel.sh: GNU parallel not found (or USE_XARGS set): running the shards with xargs -P $JOBS" >&2
    seq 0 $((N - 1)) | xargs -P "$JOBS" -I{} \
        $RELCLI translate --src "$SRC" --map "$MAP" --shard {}/"$N" -q -o "$OUT/part{}-of-$N.h5"
fi

$RELCLI merge "$OUT"/part*-of-"$N".h5 -o "$MERGED"
