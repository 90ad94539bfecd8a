#!/usr/bin/env bash
# VAW-GAN recipe on natural CMU ARCTIC speech (bdl, slt, clb; 16 kHz).
#
#   bash recipes/arctic/run.sh [--stage N] [--stop-stage M] [--conf FILE] [--corpus DIR] [--work DIR] [--jobs N]
#
# --corpus defaults to the small natural corpus inside the repository (data/arctic:
# 78 sentences each of bdl and slt, 30 of clb); the full one is
#   bash recipes/arctic/run.sh --corpus ../shared/data/speech/arctic --work full
# (or VAWGAN_CORPUS=DIR), one folder per speaker or the official cmu_us_<spk>_arctic/wav layout.
# --conf picks the training protocol: conf/parallel.yaml (default: every speaker trains on all its
# train sentences, the parallel pairs are used) or conf/nonparallel.yaml (no sentence shared between
# speakers in training, no alignment). Splits are fixed inside ARCTIC set A (see the conf files):
# train a0001-a0024 + a0031-a0493, dev a0494-a0543, eval a0025-a0030 + a0544-a0593.
#
# Outputs, relative to this folder, with TAG the conf file's name (parallel, nonparallel):
#   0  vawgan prepare  -> WORK/data/TAG/{all,train,dev,eval}.tsv   manifests (+ train_parallel.tsv)
#   1  vawgan extract  -> WORK/dump/features/<spk>/<utt>.npz      WORLD + mel-cepstra (shared by the confs)
#   2  vawgan stats    -> WORK/dump/TAG/stats.npz                 statistics of the train split
#   3  vawgan train --phase vae          -> WORK/exp/TAG/model/vae.pt      VAE pretraining
#   4  vawgan train --phase critic       -> WORK/exp/TAG/model/checkpoint.pt  critic pretraining
#   5  vawgan train --phase adversarial  -> WORK/exp/TAG/model/vawgan.pt   adversarial fine-tuning
#      (a killed training stage continues from its checkpoint when re-run)
#   6  vawgan convert  -> WORK/exp/TAG/converted/<system>/<src>-<tgt>/<utt>.wav   eval split, every
#      ordered speaker pair whose target recorded the sentence: copy, anasyn (analysis-synthesis of
#      the target), vae, vae_gv0.5 (VAE + GV postfilter), vawgan, and vawgan_vc / anasyn_vc (vocoder
#      compensation)
#   7  vawgan gmm-train / gmm-convert / evaluate / plot -> WORK/exp/gmm (joint-density GMM on the
#      parallel train pairs, shared by the confs), WORK/exp/TAG/eval/results*.{md,csv} and plots/*.png
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

stage=0
stop_stage=100
conf=conf/parallel.yaml
corpus=${VAWGAN_CORPUS:-$here/../../data/arctic}
work=.
jobs=$(nproc 2>/dev/null || echo 1)

usage() { sed -n '2,/^set -euo/p' "$here/run.sh" | grep '^#' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stage=$2; shift 2 ;;
        --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
        --conf) conf=$2; shift 2 ;;
        --corpus) corpus=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "run.sh: unknown option $1" >&2; usage 2 ;;
    esac
done
# Paths given on the command line are taken from where the user stands; then work from this folder.
[ -d "$corpus" ] || { echo "run.sh: corpus folder $corpus not found; pass --corpus DIR" >&2; exit 2; }
corpus=$(cd "$corpus" && pwd)
cd "$here"
[ -f "$conf" ] || { echo "run.sh: config $conf not found" >&2; exit 2; }
tag=$(basename "$conf" .yaml)
data=$work/data/$tag
dump=$work/dump
exp=$work/exp/$tag

# run_stage N DESCRIPTION: true when stage N is inside --stage..--stop-stage (and says so).
run_stage() {
    if [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; then
        echo "=== stage $1: $2 ($(date -u +%H:%M:%S)) ==="
        return 0
    fi
    return 1
}

if run_stage 0 "manifests of $corpus"; then
    vawgan prepare --config "$conf" --corpus "$corpus" --out "$data"
fi

if run_stage 1 "feature extraction"; then
    vawgan extract --config "$conf" --manifest "$data/all.tsv" --out "$dump/features" --jobs "$jobs"
fi

if run_stage 2 "statistics of the train split"; then
    vawgan stats --manifest "$data/train.tsv" --features "$dump/features" --out "$dump/$tag/stats.npz"
fi

train_args=(--config "$conf" --features "$dump/features" --manifest "$data/train.tsv" --stats "$dump/$tag/stats.npz"
            --model-dir "$exp/model" --resume)

if run_stage 3 "VAE pretraining"; then
    vawgan train --phase vae "${train_args[@]}"
fi

if run_stage 4 "critic pretraining"; then
    vawgan train --phase critic "${train_args[@]}"
fi

if run_stage 5 "adversarial fine-tuning of the decoder"; then
    vawgan train --phase adversarial "${train_args[@]}"
fi

if run_stage 6 "convert the eval split"; then
    for system in copy anasyn vae vawgan; do
        vawgan convert "$data/eval.tsv" --split eval --target all --model "$exp/model" --which "$system" \
            -o "$exp/converted/$system" --jobs "$jobs"
    done
    vawgan convert "$data/eval.tsv" --split eval --target all --model "$exp/model" --which vae --gv-postfilter 0.5 \
        -o "$exp/converted/vae_gv0.5" --jobs "$jobs"
    for system in anasyn vawgan; do
        vawgan convert "$data/eval.tsv" --split eval --target all --model "$exp/model" --which "$system" \
            --vocoder-compensation -o "$exp/converted/${system}_vc" --jobs "$jobs"
    done
fi

if run_stage 7 "GMM baseline, evaluation table and figures"; then
    gmm_train=$data/train.tsv
    [ -f "$data/train_parallel.tsv" ] && gmm_train=$data/train_parallel.tsv
    vawgan gmm-train --manifest "$gmm_train" --features "$dump/features" --out "$work/exp/gmm" \
        --components "${GMM_COMPONENTS:-16}" --jobs "$jobs"
    vawgan gmm-convert --gmm "$work/exp/gmm" --manifest "$data/eval.tsv" --features "$dump/features" \
        --stats "$dump/$tag/stats.npz" --out "$exp/converted/gmm"
    vawgan gmm-convert --gmm "$work/exp/gmm" --manifest "$data/eval.tsv" --features "$dump/features" \
        --stats "$dump/$tag/stats.npz" --out "$exp/converted/gmm_vc" --vocoder-compensation --config "$conf"
    vawgan evaluate --config "$conf" --manifest "$data/eval.tsv" --converted "$exp/converted" --out "$exp/eval" \
        --jobs "$jobs" --model "$exp/model" --features "$dump/features" --gmm "$work/exp/gmm" \
        --systems copy,gmm,gmm_vc,vae,vae_gv0.5,vawgan,vawgan_vc,anasyn,anasyn_vc
    vawgan plot --model "$exp/model" --features "$dump/features" --manifest "$data/eval.tsv" \
        --converted "$exp/converted" --gmm "$work/exp/gmm" --out-dir "$exp/eval/plots"
    echo "converted wavs: $here/$exp/converted/<system>/<source>-<target>/<utt>.wav"
fi
