"""What a folder of converted wavs was made with: ``<folder>/system.yaml``, written beside the outputs.

Batch conversion (:func:`vawgan.batch.convert_batch`) and the GMM baseline
(:func:`vawgan.baselines.gmm.write_conversions`) record the system (which
weights, or ``gmm``, ``copy``, ``anasyn``), the model it came from, the GV
postfilter's strength and whether the vocoder was compensated. The evaluation
reads the file to describe the folder's row and to convert the same way at the
feature level. A folder without the file is read from its name, as recipes
name them: ``vae_gv0.5`` is the VAE with the GV postfilter at 0.5, a name
ending in ``_vc`` the system rendered with vocoder compensation.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from vawgan.errors import VawganError
from vawgan.utils import atomic_path

SYSTEM_FILE = "system.yaml"
MODEL_SYSTEMS = ("vawgan", "vae")
DESCRIPTIONS = {
    "copy": "source unchanged (no conversion)",
    "gmm": "joint-density GMM + MLPG (baseline)",
    "vae": "VAE (after pretraining)",
    "vawgan": "VAW-GAN (after adversarial training)",
    "anasyn": "analysis-synthesis of the target (ceiling)",
}
_POSTFILTERED = re.compile(r"^(?P<which>vae|vawgan)_gv(?P<alpha>\d+(?:\.\d+)?)$")
_VOCODER_COMPENSATED = "_vc"


@dataclass(frozen=True)
class SystemSettings:
    """How the wavs of one output folder were made.

    ``system`` is ``vawgan`` or ``vae`` (the model's weights), ``gmm``,
    ``copy``, ``anasyn``, or for a folder of unknown origin its name;
    ``model`` the model directory (or GMM folder) used, None for the
    references and for settings read from a folder name.
    """

    system: str
    gv_postfilter: float = 0.0
    vocoder_compensation: bool = False
    model: str | None = None

    @classmethod
    def from_name(cls, name: str) -> SystemSettings:
        """The settings a recipe's folder name stands for: ``vae_gv0.5``, ``vawgan_vc``, ``gmm``, ..."""
        compensated = name.endswith(_VOCODER_COMPENSATED)
        base = name[:-len(_VOCODER_COMPENSATED)] if compensated else name
        match = _POSTFILTERED.match(base)
        if match:
            return cls(match["which"], float(match["alpha"]), compensated)
        return cls(base, 0.0, compensated)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> SystemSettings | None:
        """The settings recorded in ``folder`` (its ``system.yaml``); None when it has none."""
        path = Path(folder) / SYSTEM_FILE
        if not path.is_file():
            return None
        try:
            data = yaml.safe_load(path.read_text())
            settings = cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
        except (yaml.YAMLError, TypeError, KeyError):
            raise VawganError(f"{path}: not a readable description of the outputs' system; delete it or convert "
                              "the folder again") from None
        return settings

    def save(self, folder: str | os.PathLike) -> None:
        """Write ``<folder>/system.yaml`` atomically."""
        with atomic_path(Path(folder) / SYSTEM_FILE) as tmp:
            Path(tmp).write_text(yaml.safe_dump(asdict(self), sort_keys=False))

    def model_weights(self) -> tuple[str, float] | None:
        """``(weights, GV postfilter strength)`` when the model's features are these outputs' features, else None.

        None for ``copy``, ``gmm``, ``anasyn`` and for vocoder-compensated
        outputs (their features before the vocoder are the plain system's).
        """
        if self.system in MODEL_SYSTEMS and not self.vocoder_compensation:
            return self.system, self.gv_postfilter
        return None

    def description(self) -> str:
        """The results table's "what it is" text."""
        text = DESCRIPTIONS.get(self.system, self.system)
        if self.gv_postfilter:
            text += f" + GV postfilter α {self.gv_postfilter:g}"
        if self.vocoder_compensation:
            text += " + vocoder compensation"
        return text
