"""The package's layers point one way: no module imports from a layer above its own.

Data flows corpus → features → statistics → models → training / conversion →
evaluation → command line, and each module may use only what lies below it
(or in its own layer). Training and conversion sit side by side and use
neither each other: a conversion never needs the trainer, and training does
its provisional conversions with the networks directly. The shared helpers
(errors, atomic files and worker settings, the DTW alignment) sit at the bottom.

The test parses every module of ``vawgan/`` (imports inside functions
included) and names each import that reaches upward.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vawgan"

# Layer of each module, by the longest matching dotted prefix, lowest first. Two layers with the same rank are
# peers: neither may import the other.
LAYERS = {
    # shared helpers, used everywhere
    "vawgan": ("helpers", 0),  # the package itself: its version
    "vawgan.errors": ("helpers", 0),
    "vawgan.utils": ("helpers", 0),
    "vawgan.alignment": ("helpers", 0),
    "vawgan.runlog": ("helpers", 0),
    "vawgan.checkpoint": ("helpers", 0),
    "vawgan.pretrained": ("helpers", 0),
    # input: configuration, corpus layouts and audio files
    "vawgan.config": ("corpus", 1),
    "vawgan.corpus": ("corpus", 1),
    "vawgan.audio": ("corpus", 1),
    # WORLD analysis (features.world), synthesis (features.synthesis) and the frame blocks and batches both run
    # in (features.batching), mel-cepstra, feature files, encoder windows
    "vawgan.features": ("features", 2),
    # speaker statistics and the transforms they drive
    "vawgan.stats": ("statistics", 3),
    "vawgan.transforms": ("statistics", 3),
    # networks and losses
    "vawgan.models": ("models", 4),
    "vawgan.losses": ("models", 4),
    # a trained model's directory: config, statistics, speakers, weights
    "vawgan.weights": ("model directory", 5),  # weights files and the NumPy and PyTorch backends running them
    "vawgan.model_dir": ("model directory", 5),
    "vawgan.model_info": ("model directory", 5),  # model cards and `vawgan info`'s summary
    # training and conversion, side by side
    "vawgan.data": ("training", 6),
    "vawgan.training": ("training", 6),
    "vawgan.gans": ("training", 6),  # the secondary image and 2-D GANs: their data, models and training loops
    "vawgan.convert": ("conversion", 6),
    "vawgan.batch": ("conversion", 6),
    "vawgan.systems": ("conversion", 6),  # what a folder of converted wavs was made with
    "vawgan.baselines": ("conversion", 6),
    # scores, tables and figures of converted speech
    "vawgan.evaluate": ("evaluation", 7),
    # the `vawgan` command
    "vawgan.cli": ("cli", 8),
    "vawgan.__main__": ("cli", 8),
}


def layer_of(module: str) -> tuple[str, int]:
    """The (name, rank) of ``module`` by its longest prefix in :data:`LAYERS`."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(f"module {module} has no layer; add it to LAYERS")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every ``vawgan`` import in ``path``, with ``from vawgan.x import y`` giving
    ``vawgan.x.y`` (``y`` may be a submodule), anywhere in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "vawgan"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "vawgan":
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        name, rank = layer_of(importer)
        for line, imported in imported_modules(path):
            other, other_rank = layer_of(imported)
            if other_rank > rank or (other_rank == rank and other != name):
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {importer} ({name}) imports "
                                f"{imported} ({other})")
    return problems


def test_no_module_imports_from_a_higher_or_peer_layer():
    assert upward_imports() == []


def test_every_module_has_a_layer():
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path))


def test_the_check_sees_imports_inside_functions(tmp_path):
    """A function-local import from a higher layer is caught like a top-level one."""
    module = tmp_path / "example.py"
    module.write_text("def f():\n    from vawgan.evaluate.metrics import score_pair\n    return score_pair\n")
    assert imported_modules(module) == [(2, "vawgan.evaluate.metrics.score_pair")]
    assert layer_of("vawgan.evaluate.metrics.score_pair")[1] > layer_of("vawgan.features.world")[1]
    with pytest.raises(KeyError, match="no layer"):
        layer_of("vawgan_other.module")
