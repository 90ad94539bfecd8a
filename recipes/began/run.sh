#!/usr/bin/env bash
# BEGAN (autoencoder discriminator, k_t proportional control, convergence measure M_global,
# mode-collapse detector) on MNIST or, when no MNIST files are found, scikit-learn's digits.
#
#   bash recipes/began/run.sh [--stage N] [--stop-stage M] [--full] [--device auto|cpu|cuda]
#
# Stages (outputs under exp/ in this folder):
#   0  vawgan began train    -> exp/began/ (checkpoint, metrics.csv, train.log with collapse
#                               warnings, samples/, report.txt)
#   2  vawgan began evaluate -> digit metrics against the real-vs-real floor, collapse verdict
#   3  vawgan began plot     -> losses.png, m_global.png (M_global and k_t), samples/final.png
#   4  vawgan began sample   -> exp/began/samples.png (100 digits)
#
# --full uses conf/full.yaml (longer, wider; for a GPU) instead of conf/quick.yaml.
set -euo pipefail
cd "$(dirname "$0")"
verb=began
models=(began)
conf_of() { if [ -n "$suffix" ]; then echo conf/full.yaml; else echo conf/quick.yaml; fi; }
sample_args=(-n 100)
sample_ext=png
source ../mnist/gan_stages.sh "$@"
