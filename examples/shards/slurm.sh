#!/usr/bin/env bash
# Translate a corpus in shards on a Slurm cluster: one array task per shard, then one merge job.
#
#   relcli translate --src xa.h5 --tgt-anchors ya.h5 --save-map map.safetensors -o xa_in_y.h5  # fit once (small)
#   jid=$(sbatch --parsable --array=0-7 --export=ALL,SRC=x.h5,MAP=map.safetensors slurm.sh)
#   sbatch --dependency=afterok:$jid --export=ALL,N=8 slurm.sh merge
#
# Each array task I writes $OUT/partI-of-N.h5 (atomically: a killed task leaves no file); N is the
# array's task count (set N=... when you resubmit only some tasks: `sbatch --array=3 --export=ALL,N=8,...
# slurm.sh` reruns shard 3 of 8). The merge job checks that every shard is there exactly once and
# writes $MERGED (a virtual HDF5 file that references the shards; MERGED=....safetensors, or
# MERGE_FLAGS=--copy, for a self-contained copy). Outside Slurm, `bash slurm.sh merge` merges, and
# SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_COUNT=8 bash slurm.sh runs one shard by hand.
#
# Variables: SRC, MAP (the shards need them), OUT (parts), MERGED (merged.h5), RELCLI (relcli),
# DEVICE (auto: the task's GPU when it has one). Paths are relative to the submission folder.
#SBATCH --job-name=relcli-shards
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=02:00:00
#SBATCH --output=relcli-%x-%A_%a.log
set -euo pipefail

OUT=${OUT:-parts}
MERGED=${MERGED:-merged.h5}
RELCLI=${RELCLI:-relcli}
cd "${SLURM_SUBMIT_DIR:-.}"
# Activate relcli's environment here if the job does not inherit it, e.g.:
# source /path/to/venv/bin/activate

if [ "${1:-}" = "merge" ]; then
    : "${N:?set N (the number of shards) for the merge: --export=ALL,N=8}"
    exec $RELCLI merge "$OUT"/part*-of-"$N".h5 -o "$MERGED" ${MERGE_FLAGS:-}
fi

: "${SLURM_ARRAY_TASK_ID:?submit as a job array: sbatch --array=0-7 slurm.sh}"
: "${SRC:?set SRC (--export=ALL,SRC=x.h5,MAP=map.safetensors)}"
: "${MAP:?set MAP (--export=ALL,SRC=x.h5,MAP=map.safetensors)}"
N=${N:-${SLURM_ARRAY_TASK_COUNT:?set N, the number of shards}}
I=$SLURM_ARRAY_TASK_ID
mkdir -p "$OUT"
exec $RELCLI translate --src "$SRC" --map "$MAP" --shard "$I/$N" --device "${DEVICE:-auto}" -q -o "$OUT/part$I-of-$N.h5"
