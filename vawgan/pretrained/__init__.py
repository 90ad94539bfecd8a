"""The pretrained models shipped with vawgan: one complete model directory per name.

Each folder holds what ``vawgan convert`` needs (config, statistics, speakers,
weights and their NumPy copies) and a README.md saying which recipe, data and
code trained it. This module only names them, so that the command line can
list them without importing anything heavy.
"""

from pathlib import Path

PRETRAINED_ROOT = Path(__file__).resolve().parent

# name -> what it is. Both were trained by the Flite recipe with recipes/flite/conf/<name>.yaml.
PRETRAINED_MODELS = {
    "quick": "non-parallel VAW-GAN (recipes/flite/conf/quick.yaml)",
    "parallel": "also trained on the Flite corpus's parallel sentences, with encoder context, eight "
                "models averaged (conf/parallel.yaml): 2.5 dB lower MCD among awb, rms and slt",
}
DEFAULT_PRETRAINED = "quick"
