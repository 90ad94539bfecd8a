#!/usr/bin/env bash
# Vanilla GAN and Coulomb GAN on the 25-Gaussian grid (SPEC section 6).
#
#   bash recipes/gan2d/run.sh [--stage N] [--stop-stage M] [--full] [--device auto|cpu|cuda]
#
# Stages (outputs under exp/ in this folder):
#   0  vawgan gan2d train    -> exp/coulomb/  (checkpoint, metrics.csv, train.log, frames/, report.txt)
#   1  vawgan gan2d train    -> exp/vanilla/
#   2  vawgan gan2d evaluate -> modes captured, high-quality share and near misses of both, 25 000 samples each
#   3  vawgan gan2d plot     -> samples_gmm.png, discriminator_field.png, training.gif, losses.png
#   4  vawgan gan2d sample   -> exp/<model>/samples.npy (25 000 points)
#
# The default configs (conf/coulomb.yaml, conf/vanilla.yaml) are CPU lengths;
# --full uses conf/*_full.yaml, the reference 500 epochs (for a GPU).
# A training stage that was interrupted continues from its checkpoint when re-run.
set -euo pipefail
cd "$(dirname "$0")"

verb=gan2d
models=(coulomb vanilla)
conf_of() { echo "conf/$1$suffix.yaml"; }
sample_args=(-n 25000)
sample_ext=npy
source ../mnist/gan_stages.sh "$@"
