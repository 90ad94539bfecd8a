"""Per-speaker F0 ranges: the quartile rule, and `vawgan f0range` on the shared corpus."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from vawgan.cli import main
from vawgan.config import load_config
from vawgan.corpus import discover, write_manifest
from vawgan.features.f0range import estimate_range


def test_quartile_rule():
    f0 = np.concatenate([np.full(20, 100.0), np.full(60, 150.0), np.full(20, 200.0), np.zeros(40)])
    # first quartile 150·0.75 = 112.5 → 110 (rounded down to 5 Hz); third 150·1.5 = 225
    assert estimate_range(f0) == (110.0, 225.0)
    with pytest.raises(ValueError):
        estimate_range(np.zeros(10))


@pytest.mark.slow
def test_f0range_command(shared_corpus, tmp_path, capsys):
    utterances = [u for u in discover(shared_corpus) if u.utt_id in ("fb010", "fb020")]
    manifest = tmp_path / "m.tsv"
    write_manifest(utterances, manifest)
    out = tmp_path / "f0"
    assert main(["f0range", "--manifest", str(manifest), "--out", str(out), "--utterances", "2",
                 "--set", "features.f0_method=dio"]) == 0
    assert (out / "f0_histograms.png").stat().st_size > 10_000
    assert "slt" in capsys.readouterr().out
    # The YAML block is a valid config as it stands.
    ranges = load_config(out / "f0_ranges.yaml").features.f0_ranges
    assert sorted(ranges) == ["awb", "rms", "slt"]
    for spk, (floor, ceil) in ranges.items():
        assert 50 <= floor < ceil <= 400, (spk, floor, ceil)
    # The female voice's range sits above both male voices' ranges.
    assert ranges["slt"][0] > max(ranges["rms"][0], ranges["awb"][0])
    assert ranges["slt"][1] > max(ranges["rms"][1], ranges["awb"][1])
    assert yaml.safe_load((out / "f0_ranges.yaml").read_text())["features"]["f0_ranges"] == ranges
