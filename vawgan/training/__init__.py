"""Training VAW-GAN: the three phases, from feature files to a model directory.

1. ``vae``: pretrain encoder + decoder on the VAE loss (Gaussian NLL + KL).
2. ``critic``: pretrain the Wasserstein critic (WGAN-GP) against the frozen
   VAE's outputs.
3. ``adversarial``: per generator step, ``n_critic`` critic steps, then one
   update of encoder and decoder where **only the decoder** sees the
   adversarial term.

The modules, in the order a call of :func:`train_model` reaches them:

- :mod:`~vawgan.training.api`: :func:`train_model`, what ``vawgan train`` does;
- :mod:`~vawgan.training.checks`: settings a run refuses before it starts;
- :mod:`~vawgan.training.distributed`: joining a ``torchrun`` process group;
- :mod:`~vawgan.training.ensembles`: the runs of an ensemble, one per seed;
- :mod:`~vawgan.training.realign`: parallel pairs re-aligned by a provisional model;
- :mod:`~vawgan.training.trainer`: the :class:`Trainer`, its phases and epochs.
"""

from vawgan.training.api import train_model
from vawgan.training.checks import check_protocol
from vawgan.training.distributed import init_distributed
from vawgan.training.ensembles import ensemble_runs
from vawgan.training.realign import ALIGNMENT_DIR, realign_pairs
from vawgan.training.trainer import PHASES, GraphedStep, Trainer, TrainingDiverged

__all__ = ["ALIGNMENT_DIR", "PHASES", "GraphedStep", "Trainer", "TrainingDiverged", "check_protocol",
           "ensemble_runs", "init_distributed", "realign_pairs", "train_model"]
