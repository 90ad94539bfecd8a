#!/usr/bin/env bash
# VAW-GAN recipe on the shared Flite corpus (3 speakers x 99 parallel sentences, 16 kHz).
#
#   bash recipes/flite/run.sh [--stage N] [--stop-stage M] [--conf FILE] [--exp DIR] [--jobs N]
#
# Stages (each one `vawgan` call; outputs relative to this folder; re-running a
# finished stage is cheap):
#   0  vawgan prepare  -> data/{all,train,dev,eval}.tsv   manifests and splits
#   1  vawgan extract  -> dump/features/<spk>/<utt>.npz   WORLD + mel-cepstral features
#   2  vawgan stats    -> dump/stats.npz                   normalization and log-F0 statistics
#   3  vawgan train --phase vae          -> exp/model/vae.pt      VAE pretraining
#   4  vawgan train --phase critic       -> exp/model/checkpoint.pt  critic pretraining
#   5  vawgan train --phase adversarial  -> exp/model/vawgan.pt   adversarial decoder fine-tuning
#      (an interrupted training stage continues from exp/model/checkpoint.pt when re-run; with
#      train.members > 1, as in conf/parallel.yaml, each stage also trains the ensemble's other models
#      in exp/model/members/seed-<k>/, which stages 6-7 then average)
#   6  vawgan convert   -> exp/converted/<system>/<src>-<tgt>/<utt>.wav  eval split, all ordered
#      speaker pairs, systems vae, vae_gv0.5 (VAE + GV postfilter), vawgan and vawgan_vc (with vocoder
#      compensation), plus the references copy (source unchanged), anasyn (analysis-synthesis of the
#      target) and anasyn_vc; outputs newer than their inputs are kept
#   7  vawgan gmm-train / gmm-convert / evaluate / plot -> exp/gmm, exp/converted/gmm{,_vc},
#      exp/eval/results*.{md,csv}, exp/eval/plots/*.png   GMM baseline, comparison table, figures
#
# --conf defaults to conf/quick.yaml (a few CPU minutes); conf/full.yaml is the
# reference schedule; conf/parallel.yaml adds the corpus's parallel sentences to
# training (train.parallel_weight). --exp DIR (default exp) puts stages 3-7's
# outputs there instead, e.g. --conf conf/parallel.yaml --exp exp/parallel.
# Another corpus: VAWGAN_CORPUS=/path/to/corpus bash run.sh
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=100
conf=conf/quick.yaml
exp=exp
jobs=$(nproc 2>/dev/null || echo 1)

usage() { sed -n '2,/^set -euo/p' "$(basename "$0")" | grep '^#' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --stage) stage=$2; shift 2 ;;
        --stop-stage|--stop_stage) stop_stage=$2; shift 2 ;;
        --conf) conf=$2; shift 2 ;;
        --exp) exp=$2; shift 2 ;;
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

# Training stages: --resume continues an interrupted phase; a finished phase is skipped.
# Add --device cuda (or run under torchrun) to train on GPUs; the default picks CUDA when present.
train_args=(--config "$conf" --features dump/features --manifest data/train.tsv --stats dump/stats.npz
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

if run_stage 6 "convert the eval split: every ordered speaker pair, references copy and anasyn"; then
    for system in copy anasyn vae vawgan; do
        vawgan convert data/eval.tsv --split eval --target all --model "$exp/model" --which "$system" \
            -o "$exp/converted/$system" --jobs "$jobs"
    done
    # The VAE with a half-strength GV postfilter: as much variance as the VAW-GAN's, without adversarial training.
    vawgan convert data/eval.tsv --split eval --target all --model "$exp/model" --which vae --gv-postfilter 0.5 \
        -o "$exp/converted/vae_gv0.5" --jobs "$jobs"
    # The VAW-GAN and the ceiling synthesized with vocoder compensation (one more synthesis per file).
    for system in anasyn vawgan; do
        vawgan convert data/eval.tsv --split eval --target all --model "$exp/model" --which "$system" \
            --vocoder-compensation -o "$exp/converted/${system}_vc" --jobs "$jobs"
    done
fi

# Stage 7: the GMM baseline (joint-density GMM + MLPG, trained on the parallel train split; GMM_COMPONENTS
# full-covariance mixtures per ordered speaker pair, default 16), then the comparison table and the figures.
if run_stage 7 "GMM baseline, evaluation table and figures"; then
    vawgan gmm-train --manifest data/train.tsv --features dump/features --out "$exp/gmm" \
        --components "${GMM_COMPONENTS:-16}" --jobs "$jobs"
    vawgan gmm-convert --gmm "$exp/gmm" --manifest data/eval.tsv --features dump/features --stats dump/stats.npz \
        --out "$exp/converted/gmm"
    vawgan gmm-convert --gmm "$exp/gmm" --manifest data/eval.tsv --features dump/features --stats dump/stats.npz \
        --out "$exp/converted/gmm_vc" --vocoder-compensation --config "$conf"
    vawgan evaluate --config "$conf" --manifest data/eval.tsv --converted "$exp/converted" --out "$exp/eval" --jobs "$jobs" \
        --model "$exp/model" --features dump/features --gmm "$exp/gmm" --systems copy,gmm,gmm_vc,vae,vae_gv0.5,vawgan,vawgan_vc,anasyn,anasyn_vc
    vawgan plot --model "$exp/model" --features dump/features --manifest data/eval.tsv --converted "$exp/converted" \
        --gmm "$exp/gmm" --out-dir "$exp/eval/plots"
    echo "converted wavs: $(pwd)/$exp/converted/<system>/<source>-<target>/<utt>.wav"
fi
