"""The pretrained models shipped with vawgan: one complete model directory per name.

Each folder holds what ``vawgan convert`` needs (config, statistics, speakers,
weights and their NumPy copies) and a README.md saying which recipe, data and
code trained it. This module only names them, so that the command line can
list them without importing anything heavy.
"""

from pathlib import Path

PRETRAINED_ROOT = Path(__file__).resolve().parent

# name -> what it is: the recipe and config that trained it. The default converts into natural voices.
PRETRAINED_MODELS = {
    "arctic": "natural CMU ARCTIC speech (bdl, slt, clb), parallel protocol: recipes/arctic/conf/parallel.yaml",
    "arctic-nonparallel": "natural CMU ARCTIC speech (bdl, slt, clb), non-parallel protocol: "
                          "recipes/arctic/conf/nonparallel.yaml",
    "quick": "synthetic Flite voices (awb, rms, slt), no parallel term: recipes/flite/conf/quick.yaml",
    "parallel": "synthetic Flite voices (awb, rms, slt), parallel term, eight models averaged: "
                "recipes/flite/conf/parallel.yaml",
}
DEFAULT_PRETRAINED = "arctic"
