#!/usr/bin/env bash
# VAW-GAN recipe on the shared Flite corpus (3 speakers x 99 parallel sentences, 16 kHz).
#
#   bash recipes/flite/run.sh [--stage N] [--stop-stage M] [--conf FILE] [--jobs N]
#
# Stages (each one `vawgan` call; outputs relative to this folder; re-running a
# finished stage is cheap):
#   0  vawgan prepare  -> data/{all,train,dev,eval}.tsv   manifests and splits
#   1  vawgan extract  -> dump/features/<spk>/<utt>.npz   WORLD + mel-cepstral features
#   2  vawgan stats    -> dump/stats.npz                   normalization and log-F0 statistics
#
# --conf defaults to conf/quick.yaml (a few CPU minutes); conf/full.yaml is the
# reference schedule. Another corpus: VAWGAN_CORPUS=/path/to/corpus bash run.sh
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
conf=conf/quick.yaml
jobs=$(nproc 2>/dev/null || echo 1)

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stage=$2; shift 2 ;;
        --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
        --conf) conf=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "run.sh: unknown option $1" >&2; usage 2 ;;
    esac
done
[ -f "$conf" ] || { echo "run.sh: config $conf not found" >&2; exit 2; }

# run_stage N DESCRIPTION: true when stage N is inside --stage..--stop-stage (and says so).
run_stage() {
    if [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; then
        echo "=== stage $1: $2 ($(date -u +%H:%M:%S)) ==="
        return 0
    fi
    return 1
}

if run_stage 0 "manifests of the corpus"; then
    vawgan prepare --config "$conf" --out data
fi

if run_stage 1 "feature extraction"; then
    vawgan extract --config "$conf" --manifest data/all.tsv --out dump/features --jobs "$jobs"
fi

if run_stage 2 "statistics of the train split"; then
    vawgan stats --manifest data/train.tsv --features dump/features --out dump/stats.npz
fi
