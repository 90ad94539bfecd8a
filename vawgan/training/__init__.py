"""Training VAW-GAN: the three phases, from feature files to a model directory.

1. ``vae``: pretrain encoder + decoder on the VAE loss (Gaussian NLL + KL).
2. ``critic``: pretrain the Wasserstein critic (WGAN-GP) against the frozen
   VAE's outputs.
3. ``adversarial``: per generator step, ``n_critic`` critic steps, then one
   update of encoder and decoder where **only the decoder** sees the
   adversarial term.

The modules, from the entry point down:

- :mod:`~vawgan.training.api`: :func:`train_model`, what ``vawgan train`` does;
- :mod:`~vawgan.training.checks`: settings a run refuses before it starts;
- :mod:`~vawgan.training.distributed`: joining a ``torchrun`` process group, DDP wrappers;
- :mod:`~vawgan.training.ensembles`: the runs of an ensemble, one per seed;
- :mod:`~vawgan.training.realign`: parallel pairs re-aligned by a provisional model;
- :mod:`~vawgan.training.trainer`: the :class:`Trainer`: phases, epochs, logs;
- :mod:`~vawgan.training.steps`: the networks, optimizers and device data, one update per step, CUDA graphs;
- :mod:`~vawgan.training.checkpoints`: the training state saved and restored for an exact resume.
"""

from vawgan.training.api import train_model
from vawgan.training.checkpoints import TrainingDiverged
from vawgan.training.checks import check_protocol
from vawgan.training.distributed import init_distributed
from vawgan.training.ensembles import ensemble_runs
from vawgan.training.realign import ALIGNMENT_DIR, realign_pairs
from vawgan.training.steps import GraphedStep
from vawgan.training.trainer import PHASES, Trainer

__all__ = ["ALIGNMENT_DIR", "PHASES", "GraphedStep", "Trainer", "TrainingDiverged", "check_protocol",
           "ensemble_runs", "init_distributed", "realign_pairs", "train_model"]
