"""The evaluation figures are real PNGs with content, drawn from real features and a real training log layout."""

from __future__ import annotations

import numpy as np
import pytest

from vawgan.errors import VawganError
from vawgan.evaluate import plots
from vawgan.evaluate.metrics import global_variance, modulation_spectrum
from vawgan.runlog import RunLogger


@pytest.fixture(scope="module")
def features(arctic_wav):
    """c0..c39 of the real ARCTIC recording (speech frames) and an over-smoothed copy, as a VAE would give."""
    import pysptk
    import pyworld
    import soundfile as sf
    from scipy.ndimage import uniform_filter1d

    x, fs = sf.read(arctic_wav)
    f0, t = pyworld.dio(x, fs, frame_period=5.0)
    sp = pyworld.cheaptrick(x, f0, t, fs)
    mcep = pysptk.sp2mc(sp, order=39, alpha=pysptk.util.mcepalpha(fs))
    mcep = mcep[mcep[:, 0] > mcep[:, 0].max() - 4.0]
    mean = mcep.mean(axis=0)
    smooth = mean + 0.5 * (uniform_filter1d(mcep, 5, axis=0) - mean)
    return {"natural target": mcep, "VAE": smooth, "VAW-GAN": mcep + 0.05}


def _image(path):
    """The PNG as an RGB(A) array; fails when the file is not a PNG."""
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(path)


def _has_colours(image, *rgb_colours):
    """True when each colour (0..1 RGB) appears on some pixel, to within quantisation."""
    pixels = image[..., :3].reshape(-1, 3)
    return all(np.any(np.all(np.abs(pixels - np.array(c)) < 0.02, axis=1)) for c in rgb_colours)


def test_scatter_draws_every_series_in_every_panel(features, tmp_path):
    from matplotlib.colors import to_rgb

    path = plots.plot_scatter(features, tmp_path / "scatter.png", pairs=((1, 3), (11, 13)))
    image = _image(path)
    assert image.shape[1] > 2 * image.shape[0] * 0.9  # two panels side by side
    assert _has_colours(image, to_rgb("tab:blue"), to_rgb("tab:red"))


def _bluish_pixels(image) -> int:
    return int(np.sum(image[..., 2] - image[..., 0] > 0.2))


def test_scatter_draws_the_natural_data_over_the_systems(features, tmp_path):
    """With a system's (blue) cloud exactly over the natural (black) one, the natural points cover it."""
    same = {"natural target": features["natural target"], "VAE": features["natural target"]}
    on_top = _image(plots.plot_scatter(same, tmp_path / "natural.png", pairs=((1, 3),)))
    under = _image(plots.plot_scatter(same, tmp_path / "vae.png", pairs=((1, 3),), on_top="VAE"))
    assert _bluish_pixels(on_top) < 0.1 * _bluish_pixels(under)


def test_every_sentence_figure_carries_its_title(features, arctic_wav, tmp_path, monkeypatch):
    import soundfile as sf

    titles = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (titles.append(fig.get_suptitle()), save(fig, path))[1])
    title = "rms → slt, eval split, feature level"
    plots.plot_scatter(features, tmp_path / "a.png", pairs=((1, 3),), title=title)
    plots.plot_global_variance({k: global_variance(v[:, 1:]) for k, v in features.items()}, tmp_path / "b.png",
                               title=title)
    plots.plot_modulation_spectrum({k: modulation_spectrum(v, 5.0) for k, v in features.items()}, (1,),
                                   tmp_path / "c.png", title=title)
    plots.plot_trajectory({k: v[:, 1] for k, v in features.items()}, 1, 5.0, tmp_path / "d.png", title=title)
    plots.plot_f0_contours({"source": np.full(50, 120.0)}, 5.0, tmp_path / "e.png", title=title)
    plots.plot_f0_histograms({"rms": {"source": np.full(50, 120.0)}}, tmp_path / "f.png", title=title)
    x, _ = sf.read(arctic_wav)
    plots.plot_aligned_spectrograms({"source": (plots.log_spectrogram(x), np.full(len(x) // 80 + 1, 120.0))}, 16000,
                                    5.0, tmp_path / "g.png", title=title)
    assert titles == [title] * 7


def test_f0_contours_and_histograms(arctic_wav, tmp_path):
    import pyworld
    import soundfile as sf
    from matplotlib.colors import to_rgb

    x, fs = sf.read(arctic_wav)
    f0, _ = pyworld.dio(x, fs, frame_period=5.0)
    assert (f0 == 0).any() and (f0 > 0).any()  # gaps and voiced stretches to draw
    contours = {"source": f0, "natural target": f0 * 1.5, "VAW-GAN": f0 * 1.45}
    image = _image(plots.plot_f0_contours(contours, 5.0, tmp_path / "f0.png", title="F0"))
    assert _has_colours(image, to_rgb("tab:red"), to_rgb("tab:gray"))
    per_speaker = {"rms": {"source": f0}, "slt": {"natural target": f0 * 1.5, "VAW-GAN": f0 * 1.45}}
    image = _image(plots.plot_f0_histograms(per_speaker, tmp_path / "hist.png"))
    assert image.shape[1] > 1.5 * image.shape[0]  # one panel per speaker, side by side
    assert _has_colours(image, to_rgb("tab:red"))
    with pytest.raises(VawganError, match="no voiced frames"):
        plots.plot_f0_histograms({"rms": {"source": np.zeros(10)}}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_scatter_rejects_dimensions_the_features_lack(features, tmp_path):
    with pytest.raises(VawganError, match="out of range"):
        plots.plot_scatter(features, tmp_path / "bad.png", pairs=((1, 40),))
    assert not (tmp_path / "bad.png").exists()


def test_gv_and_modulation_spectrum_plots(features, tmp_path):
    gvs = {label: global_variance(frames[:, 1:]) for label, frames in features.items()}
    assert np.all(gvs["VAE"] < gvs["natural target"])  # the smoothed copy really is over-smoothed
    image = _image(plots.plot_global_variance(gvs, tmp_path / "gv.png"))
    assert image[..., :3].std() > 0.05
    spectra = {label: modulation_spectrum(frames, 5.0) for label, frames in features.items()}
    image = _image(plots.plot_modulation_spectrum(spectra, (1, 11), tmp_path / "ms.png"))
    assert image.shape[1] > image.shape[0]


def test_trajectory_plot(features, tmp_path):
    traj = {label: frames[:, 1] for label, frames in features.items()}
    _image(plots.plot_trajectory(traj, 1, 5.0, tmp_path / "traj.png"))


def test_spectrograms_are_warped_onto_the_target_time_axis_with_f0_over_them(arctic_wav, tmp_path):
    """A slowed-down copy of a real recording, as the longer target: every panel gets the target's frames,
    the DTW map runs forward through each recording, and the figure shows the F0 lines (cyan) over the
    spectrograms."""
    import librosa
    import soundfile as sf
    from matplotlib.colors import to_rgb

    from vawgan.config import FeatureConfig
    from vawgan.evaluate.figures import aligned_spectrogram_panels, dtw_frame_map
    from vawgan.features.world import analyze

    config = FeatureConfig(f0_method="dio")
    x, fs = sf.read(arctic_wav)
    slower = librosa.effects.time_stretch(x.astype(np.float32), rate=0.8).astype(np.float64)
    recordings = {label: (y, analyze(y, fs, config)) for label, y in (("source", x), ("natural target", slower))}
    source, target = (feats for _, feats in recordings.values())
    assert target.num_frames > 1.2 * source.num_frames
    frames = dtw_frame_map(source, target)
    assert len(frames) == target.num_frames and frames[0] == 0 and frames[-1] == source.num_frames - 1
    assert np.all(np.diff(frames) >= 0)
    panels = aligned_spectrogram_panels(recordings, reference="natural target")
    for label, (db, f0) in panels.items():
        assert db.shape == (513, target.num_frames) and f0.shape == (target.num_frames,), label
        assert db.max() > -10.0 and db.std() > 5.0 and (f0 > 0).any(), label
    np.testing.assert_array_equal(panels["source"][1], source.f0[frames])
    np.testing.assert_array_equal(panels["natural target"][1], target.f0)
    image = _image(plots.plot_aligned_spectrograms(panels, fs, config.frame_period, tmp_path / "spec.png"))
    assert image.shape[0] > image.shape[1] * 0.45  # two rows stacked
    assert _has_colours(image, to_rgb("cyan"))
    with pytest.raises(VawganError, match="one time axis"):
        plots.plot_aligned_spectrograms({"a": panels["source"], "b": (panels["source"][0][:, :10], np.zeros(10))},
                                        fs, 5.0, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_plot_pairs_are_every_ordered_pair_the_named_ones_or_source_to_target():
    from vawgan.evaluate.figures import _speaker_pairs

    speakers = ["bdl", "clb", "slt"]
    assert _speaker_pairs("m.tsv", speakers, None, None, None, all_pairs=True) == [
        ("bdl", "clb"), ("bdl", "slt"), ("clb", "bdl"), ("clb", "slt"), ("slt", "bdl"), ("slt", "clb")]
    assert _speaker_pairs("m.tsv", speakers, None, None, ["slt-bdl", "bdl-slt", "slt-bdl"], False) == [
        ("slt", "bdl"), ("bdl", "slt")]
    assert _speaker_pairs("m.tsv", speakers, None, None, None, False) == [("bdl", "clb")]  # the default
    assert _speaker_pairs("m.tsv", speakers, "slt", None, None, False) == [("slt", "bdl")]
    with pytest.raises(VawganError, match="--pair 'slt-rms': expected SRC-TGT with speakers of the manifest"):
        _speaker_pairs("m.tsv", speakers, None, None, ["slt-rms"], False)
    with pytest.raises(VawganError, match="only one speaker"):
        _speaker_pairs("m.tsv", ["slt"], None, None, None, all_pairs=True)


def _write_log(log_dir, vae=3, critic=2, adversarial=3, parallel=False, wgan=True):
    """A training log with the tags and epoch numbering of `vawgan train` (epochs counted across phases);
    ``parallel``: also the ``parallel/nll`` of a run with ``train.parallel_weight`` > 0; ``wgan``: the
    critic's Wasserstein estimate and gradient penalty."""
    extra = (lambda i: {"parallel/nll": 37.0 - i}) if parallel else (lambda i: {})
    terms = (lambda i: {"critic/wasserstein": 2.0 - 0.3 * i, "critic/gradient_penalty": 0.1 + 0.05 * i}) \
        if wgan else (lambda i: {})
    with RunLogger(log_dir, tensorboard=False) as log:
        epoch = 0
        for i in range(vae):
            epoch += 1
            log.log(epoch, {"vae/nll": 30 - i, "vae/kl": 5.0, "vae/loss": 35 - i, **extra(i)})
        for i in range(critic):
            epoch += 1
            log.log(epoch, {"critic/loss": -1.0 - i, "critic/d_real": 1.0 + i, "critic/d_fake": -1.0 - i, **terms(i)})
        for i in range(adversarial):
            epoch += 1
            log.log(epoch, {"vae/loss": 40 - i, "critic/d_real": 0.5, "critic/d_fake": 0.2 * i,
                            "generator/loss": 30.0, **extra(i), **terms(critic + i)})
    return log_dir / "metrics.csv"


def test_training_curves_mark_the_phases(tmp_path):
    from vawgan.runlog import read_scalars

    csv_path = _write_log(tmp_path)
    assert plots.phase_boundaries(read_scalars(csv_path)) == (4, 6)
    image = _image(plots.plot_training_curves(csv_path, tmp_path / "curves.png"))
    assert image.shape[1] > image.shape[0]


def test_training_curves_draw_the_parallel_nll_only_when_logged(tmp_path):
    green = (0x2C / 255, 0xA0 / 255, 0x2C / 255)  # matplotlib's tab:green, the parallel NLL's line
    with_pairs = _image(plots.plot_training_curves(_write_log(tmp_path / "a", parallel=True), tmp_path / "a.png"))
    without = _image(plots.plot_training_curves(_write_log(tmp_path / "b"), tmp_path / "b.png"))
    assert _has_colours(with_pairs, green) and not _has_colours(without, green)


def test_training_curves_draw_the_wasserstein_estimate_and_gradient_penalty_when_logged(tmp_path):
    from matplotlib.colors import to_rgb

    purple = to_rgb("tab:purple")  # the gradient penalty's line
    with_terms = _image(plots.plot_training_curves(_write_log(tmp_path / "a"), tmp_path / "a.png"))
    without = _image(plots.plot_training_curves(_write_log(tmp_path / "b", wgan=False), tmp_path / "b.png"))
    assert _has_colours(with_terms, purple) and not _has_colours(without, purple)
    assert with_terms.shape[1] > 3 * with_terms.shape[0]  # three panels side by side


def test_training_curves_errors_are_one_line(tmp_path):
    with pytest.raises(VawganError, match="training log not found"):
        plots.plot_training_curves(tmp_path / "missing.csv", tmp_path / "x.png")
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text("step,tag,value\n1,critic/d_real,0.5\n")
    with pytest.raises(VawganError, match="no 'vae/loss'"):
        plots.plot_training_curves(csv_path, tmp_path / "x.png")


def test_plot_cli_draws_training_curves_and_reports_errors_in_one_line(tmp_path, capsys):
    from vawgan.cli import main

    model_dir = tmp_path / "model"
    _write_log(model_dir)
    assert main(["plot", "--kind", "curves", "--model", str(model_dir), "--out-dir", str(tmp_path / "plots")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "plots" / "training_curves.png")
    _image(tmp_path / "plots" / "training_curves.png")

    assert main(["plot", "--kind", "gv", "--model", str(model_dir), "--manifest",
                 str(tmp_path / "none.tsv"), "--out-dir", str(tmp_path / "plots")]) == 2
    assert "manifest not found" in capsys.readouterr().err
    assert main(["plot", "--kind", "gv", "--model", str(tmp_path / "absent"),
                 "--out-dir", str(tmp_path / "plots")]) == 2
    assert "absent: model directory not found (nor a packaged model: arctic, arctic-nonparallel, quick, parallel)" in capsys.readouterr().err
    assert main(["plot", "--pairs-all", "--source", "slt", "--out-dir", str(tmp_path / "plots")]) == 2
    assert "--pairs-all chooses the speaker pairs; leave out --source and --target" in capsys.readouterr().err
    assert main(["plot", "--kind", "scatter", "--pairs", "1,x", "--out-dir", str(tmp_path / "plots")]) == 2
    err = capsys.readouterr().err
    assert "--pairs '1,x'" in err and len(err.strip().splitlines()) == 1
