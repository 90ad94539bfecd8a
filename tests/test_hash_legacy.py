"""A model directory written before vawgan recorded weight hashes keeps working after a NumPy export adds some."""

import shutil

from vawgan.checkpoint import HASHES_FILE, read_hashes
from vawgan.convert import Converter, pretrained_model_dir
from vawgan.weights import export_numpy_weights


def test_a_legacy_directory_converts_after_an_export_records_one_hash(tmp_path):
    model = tmp_path / "legacy"
    shutil.copytree(pretrained_model_dir("quick"), model)
    (model / HASHES_FILE).unlink()
    for name in ("vae.npz", "vawgan.npz"):
        (model / name).unlink()
    export_numpy_weights(model, "vae")  # records the hash of vae.npz alone
    assert set(read_hashes(model)) == {"vae.npz"}
    converter = Converter(model, which="vawgan")  # vawgan.pt is not listed: loaded unchecked, not refused
    assert converter.speakers == ["awb", "rms", "slt"]
