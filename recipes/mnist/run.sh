#!/usr/bin/env bash
# DCGAN and fully connected GAN on MNIST, or on scikit-learn's bundled digits when no MNIST
# files are found (the log says where it looked; nothing is downloaded).
#
#   bash recipes/mnist/run.sh [--stage N] [--stop-stage M] [--full] [--device auto|cpu|cuda]
#
# Stages (outputs under exp/ in this folder):
#   0  vawgan mnist train    -> exp/mlp/    (checkpoint, metrics.csv, train.log, samples/, report.txt)
#   1  vawgan mnist train    -> exp/dcgan/
#   2  vawgan mnist evaluate -> class spread, confidence, Frechet distance, diversity, collapse,
#                               with the real-vs-real floor
#   3  vawgan mnist plot     -> losses.png (raw + moving average), samples/final.png
#   4  vawgan mnist sample   -> exp/<model>/samples.png (100 digits)
#
# MNIST is read from data.mnist_dir, $VAWGAN_MNIST_DIR, ~/.cache/vawgan/mnist,
# ./data/MNIST/raw or ~/data/mnist (train-images-idx3-ubyte etc., optionally .gz).
# --full uses conf/*_full.yaml (reference lengths, for a GPU).
set -euo pipefail
cd "$(dirname "$0")"
verb=mnist
models=(mlp dcgan)
conf_of() { echo "conf/$1$suffix.yaml"; }
sample_args=(-n 100)
sample_ext=png
source gan_stages.sh "$@"
