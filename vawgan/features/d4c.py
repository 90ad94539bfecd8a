"""WORLD's D4C band aperiodicity for all frames at once (NumPy), already coded.

``pyworld.d4c`` estimates each frame in a C loop: five to seven FFTs of
F0-adaptive windows, several spectral smoothings and a sort per frame. That is
a third of the CPU time of a DIO analysis and half of a conversion's
(``benchmarks/bench_extract.py``). Every step is the same arithmetic for every
frame, with only the window length and the smoothing widths depending on the
frame's F0, so here each step runs on a whole block of frames as array
operations: the windows are gathered into one (frames, samples) matrix, the
FFTs are one batched call, the smoothings are interpolations into one
cumulative sum per frame, and the sort becomes a partition.

What it computes is WORLD's D4C (Morise 2016, "D4C, a band-aperiodicity
estimator for high-quality speech synthesis") followed by
``pyworld.code_aperiodicity``, step for step:

1. *Voicing check* ("LoveTrain"): a 3-period Blackman window; a voiced frame
   whose power between 100 Hz and 4 kHz is at most ``THRESHOLD`` of its power
   between 100 Hz and 7.9 kHz is treated as unvoiced.
2. *Static group delay*: energy centroids (the spectrum of t·w(t)x(t) against
   that of w(t)x(t), 4-period Blackman windows) a quarter period before and
   after the frame, summed; divided by the smoothed power spectrum (4-period
   Hann window); smoothed over F0/2, minus itself smoothed over F0.
3. *Band aperiodicity*: the group delay around each multiple of 3 kHz under a
   Nuttall window, its power spectrum, and the share of power outside the
   strongest few components, in dB; raised by (F0 − 100)/50 and capped at 0.

The coded value of a band is what ``code_aperiodicity`` reads back at the
band centre (:func:`_code`); unvoiced frames get WORLD's "fully aperiodic"
20·log10(1 − 1e-12). Three differences from WORLD, none of which moves a
band that holds speech by more than 0.2 dB (mean 0.003 dB over real speech,
``tests/test_features_d4c.py``): WORLD's seeded 1e-12 dither of every analysis
window is left out; the order of floating-point sums differs; and a
smoothed power that comes out 0 where the signal has no energy is held at
the precision of the running sum instead of dividing by it. Bands with no
signal at all (above the bandwidth of upsampled audio) are rounding noise in
both implementations and differ by several dB.

Speed (``benchmarks/bench_extract.py``): about 1.3–1.5× faster than
``pyworld.d4c`` on one core, in double precision with NumPy's FFT. (SciPy's
single-precision FFT made it 1.2× faster still, but importing ``scipy.fft``
costs 0.14 s, a fifth of a `vawgan convert` call, which never needs SciPy
otherwise.) The analysis threads of :func:`vawgan.features.world.analyze`
split it over cores like the pyworld steps.
"""

from __future__ import annotations

import functools

import numpy as np

# WORLD's constants (constantnumbers.h / d4c.cpp).
FLOOR_F0 = 47.0  # lowest F0 the band analysis assumes (kFloorF0D4C)
LOVETRAIN_FLOOR_F0 = 40.0  # lowest F0 of the voicing check
BAND_INTERVAL = 3000.0  # Hz between band centres (kFrequencyInterval)
BAND_UPPER_LIMIT = 15000.0  # Hz, highest band centre (kUpperLimit)
THRESHOLD = 0.85  # voicing-check threshold (kThreshold, pyworld.d4c's default)
SAFEGUARD = 1e-12  # kMySafeGuardMinimum
UNVOICED_CODED = 20.0 * np.log10(1.0 - SAFEGUARD)
# Frames per batch: bounds the (frames, FFT size) work arrays to a few MB.
BLOCK_FRAMES = 128


def number_of_bands(fs: int) -> int:
    """How many 3 kHz-spaced aperiodicity bands WORLD codes at ``fs`` (1 at 16 kHz, 5 at 48 kHz)."""
    return int(min(BAND_UPPER_LIMIT, fs / 2.0 - BAND_INTERVAL) / BAND_INTERVAL)


def _power_of_two_above(value: float) -> int:
    return int(2.0 ** (1 + int(np.log2(value + 1))))


def _matlab_round(v: np.ndarray) -> np.ndarray:
    """Round half away from zero, as WORLD's ``matlab_round``, as integers."""
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)


class _AdaptiveWindows:
    """F0-adaptive windows of ``ratio`` periods for a block of frames, one row per frame.

    Frame ``i``'s window spans ``ratio`` periods of ``f0[i]``; rows are as long
    as the longest window and zero past each frame's own. The Hann and
    Blackman shapes share one cosine table, so D4C's three 4-period windows
    of a frame cost one.
    """

    def __init__(self, fs: int, f0: np.ndarray, ratio: float):
        self.half = _matlab_round(ratio * fs / f0 / 2.0)
        self.offset = np.arange(2 * self.half.max() + 1)[None, :] - self.half[:, None]  # samples from the centre
        inside = self.offset <= self.half[:, None]
        self.cos = np.cos((np.pi * 2.0 / ratio / fs) * self.offset * f0[:, None])
        self.inside = inside
        self.fs = fs

    def hann(self) -> np.ndarray:
        return (0.5 * self.cos + 0.5) * self.inside

    def blackman(self) -> np.ndarray:
        return (0.42 + 0.5 * self.cos + 0.08 * (2.0 * self.cos * self.cos - 1.0)) * self.inside

    def apply(self, x: np.ndarray, window: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The windowed waveforms centred on the samples nearest ``positions`` (s), starting at column 0.

        Indices outside the signal are clamped to its ends, and the window's
        share of each waveform's mean is removed, as WORLD does.
        """
        origin = _matlab_round(positions * self.fs + 0.001)
        waveform = x[np.clip(origin[:, None] + self.offset, 0, len(x) - 1)] * window
        waveform -= window * (waveform.sum(axis=1) / window.sum(axis=1))[:, None]
        return waveform


def _rfft(waveform: np.ndarray, fft_size: int) -> np.ndarray:
    """Spectra of the rows zero-padded to ``fft_size`` (padding by hand: 20 % faster than ``rfft``'s own)."""
    padded = np.zeros((len(waveform), fft_size))
    padded[:, :waveform.shape[1]] = waveform
    return np.fft.rfft(padded, axis=1)


def _power(spectrum: np.ndarray) -> np.ndarray:
    """|X|² (cheaper than ``np.abs(X) ** 2``, which takes a square root first)."""
    return spectrum.real * spectrum.real + spectrum.imag * spectrum.imag


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Re(a · conj(b))."""
    return a.real * b.real + a.imag * b.imag


def _shifted_rows(a: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """``a[i, starts[i]:starts[i] + width]`` for every row ``i``, as one array.

    Indexing a sliding-window view copies each row's slice in one NumPy call
    (3x faster here than fancy indexing with a full index matrix, and without
    a Python loop that would hold the GIL while the analysis threads run).
    """
    return np.lib.stride_tricks.sliding_window_view(a, width, axis=1)[np.arange(len(a)), starts]


def _dc_correction(spectrum: np.ndarray, f0: np.ndarray, fs: int, fft_size: int) -> np.ndarray:
    """Add to each bin below F0 the spectrum mirrored about F0 (WORLD's ``DCCorrection``), per frame."""
    bin_width = fs / fft_size
    count = 1 + (f0 * fft_size / fs).astype(np.int64)  # bins 0 .. floor(F0 / bin width)
    bins = np.arange(count.max())
    mirrored = np.clip(f0[:, None] / bin_width - bins[None, :], 0.0, None)  # index of F0 - f
    base = mirrored.astype(np.int64)
    fraction = mirrored - base
    rows = np.arange(len(f0))[:, None]
    replica = spectrum[rows, base] + (spectrum[rows, base + 1] - spectrum[rows, base]) * fraction
    out = spectrum.copy()
    use = bins[None, :] < count[:, None]
    out[:, :bins.size] += np.where(use, replica, 0.0)
    return out


def _linear_smoothing(spectrum: np.ndarray, width: np.ndarray, fs: int, fft_size: int) -> np.ndarray:
    """Each bin averaged over ``width`` Hz around it (per frame), WORLD's ``LinearSmoothing``.

    The half spectrum is extended symmetrically past 0 Hz and Nyquist, treated
    as piecewise constant per bin, integrated (a cumulative sum) and the
    integral differenced over [f − width/2, f + width/2] by linear
    interpolation. One margin of bins wide enough for the widest frame serves
    every frame; the margin only shifts the integral by a constant, which the
    difference cancels. The interpolation points of a frame all lie at the
    same fraction of a bin, so each end of the window is a shifted row.
    """
    half = fft_size // 2
    bin_width = fs / fft_size
    margin = int(width.max() * fft_size / fs) + 1
    k = np.arange(-margin, half + margin + 1)
    mirror = np.where(k < 0, -k, np.where(k > half, fft_size - k, k))
    # Entry m: the sum of the bins up to bin m - margin, i.e. the integral up to that bin's upper edge in bins.
    integral = np.cumsum(spectrum[:, mirror], axis=1)

    def integral_at(shift_hz: np.ndarray) -> np.ndarray:
        """The integral (in bins) at every bin's centre frequency plus ``shift_hz`` (per frame)."""
        position = shift_hz / bin_width + margin - 0.5
        base = np.floor(position).astype(np.int64)
        rows = _shifted_rows(integral, base, half + 2)
        below = rows[:, :-1]
        value = rows[:, 1:] - below
        value *= (position - base)[:, None]
        value += below
        return value

    smoothed = integral_at(width / 2.0)
    smoothed -= integral_at(-width / 2.0)
    smoothed *= (bin_width / width)[:, None]
    return smoothed


def _voicing_ratio(x: np.ndarray, fs: int, f0: np.ndarray, times: np.ndarray) -> np.ndarray:
    """D4C's voicing check (WORLD's ``D4CLoveTrain``): power 100 Hz–4 kHz over power 100 Hz–7.9 kHz."""
    fft_size = _power_of_two_above(3.0 * fs / LOVETRAIN_FLOOR_F0)
    low = int(np.ceil(100.0 * fft_size / fs))
    mid = int(np.ceil(4000.0 * fft_size / fs))
    high = int(np.ceil(7900.0 * fft_size / fs))
    windows = _AdaptiveWindows(fs, np.maximum(f0, LOVETRAIN_FLOOR_F0), 3.0)
    power = _power(_rfft(windows.apply(x, windows.blackman(), times), fft_size))
    return power[:, low + 1:mid + 1].sum(axis=1) / power[:, low + 1:high + 1].sum(axis=1)


def _centroid(waveform: np.ndarray, fft_size: int) -> np.ndarray:
    """Energy centroid spectrum: Re(X · conj(X_t)), X of the power-normalized waveform and X_t of t times it."""
    waveform = waveform / np.sqrt(np.sum(waveform * waveform, axis=1))[:, None]
    spectrum = _rfft(waveform, fft_size)
    weighted = _rfft(waveform * np.arange(1.0, waveform.shape[1] + 1.0), fft_size)
    return _cross(spectrum, weighted)


def _static_group_delay(x: np.ndarray, fs: int, f0: np.ndarray, times: np.ndarray, fft_size: int) -> np.ndarray:
    windows = _AdaptiveWindows(fs, f0, 4.0)
    blackman = windows.blackman()
    centroid = (_centroid(windows.apply(x, blackman, times - 0.25 / f0), fft_size)
                + _centroid(windows.apply(x, blackman, times + 0.25 / f0), fft_size))
    centroid = _dc_correction(centroid, f0, fs, fft_size)
    power = _power(_rfft(windows.apply(x, windows.hann(), times), fft_size))
    power = _linear_smoothing(_dc_correction(power, f0, fs, fft_size), f0, fs, fft_size)
    # Where a frame has next to no energy (above the band edge of upsampled audio), the smoothed power is
    # a difference of two nearly equal running sums and can come out 0 or negative; WORLD's dither and
    # rounding leave it tiny instead. Hold it at the resolution of the running sum so the group delay
    # stays finite there (its value is noise in either implementation).
    power = np.maximum(power, np.finfo(np.float64).eps * power.max(axis=1, keepdims=True))
    group_delay = _linear_smoothing(centroid / power, f0 / 2.0, fs, fft_size)
    return group_delay - _linear_smoothing(group_delay, f0, fs, fft_size)


@functools.lru_cache(maxsize=8)
def _nuttall(length: int) -> np.ndarray:
    t = 2.0 * np.pi * np.arange(length) / (length - 1.0)
    return 0.355768 - 0.487396 * np.cos(t) + 0.144232 * np.cos(2 * t) - 0.012604 * np.cos(3 * t)


def _band_aperiodicity(group_delay: np.ndarray, f0: np.ndarray, fs: int, fft_size: int, bands: int) -> np.ndarray:
    """(frames, bands) aperiodicity in dB from the static group delay."""
    half_window = int(BAND_INTERVAL * fft_size / fs)
    window = _nuttall(2 * half_window + 1)
    strongest = int(_matlab_round(np.array(fft_size * 8.0 / window.size))) + 1  # components left out
    kept = fft_size // 2 + 1 - strongest
    out = np.empty((len(f0), bands))
    for band in range(bands):
        centre = int(BAND_INTERVAL * (band + 1) * fft_size / fs)
        segment = group_delay[:, centre - half_window:centre + half_window + 1] * window
        power = _power(_rfft(segment, fft_size))
        weakest = np.partition(power, kept, axis=1)[:, :kept].sum(axis=1)
        out[:, band] = 10.0 * np.log10(weakest / power.sum(axis=1))
    return np.minimum(0.0, out + ((f0 - 100.0) / 50.0)[:, None])


def _code(band_db: np.ndarray, fs: int, envelope_fft_size: int) -> np.ndarray:
    """What ``pyworld.code_aperiodicity`` reads back from D4C's full aperiodicity at each band centre.

    D4C spreads the band values over the ``envelope_fft_size`` bins by linear
    interpolation in dB between knots at 0 Hz (−60 dB), the band centres and
    Nyquist (0 dB); coding samples that at the band centres, interpolating
    between the two nearest bins. Where a centre falls on a bin (16, 24 and
    48 kHz with the default FFT sizes) this returns the band values themselves;
    elsewhere (22.05 or 44.1 kHz) the bins on either side lie on different
    pieces and the coded value differs from the band value by up to ~0.1 dB.
    """
    bands = band_db.shape[1]
    knots = np.append(np.arange(bands + 1) * BAND_INTERVAL, fs / 2.0)
    values = np.concatenate([np.full((len(band_db), 1), -60.0), band_db,
                             np.full((len(band_db), 1), -SAFEGUARD)], axis=1)

    def envelope_at(frequency: float) -> np.ndarray:
        piece = min(int(np.searchsorted(knots, frequency, side="right")) - 1, len(knots) - 2)
        share = (frequency - knots[piece]) / (knots[piece + 1] - knots[piece])
        return values[:, piece] + (values[:, piece + 1] - values[:, piece]) * share

    bin_width = fs / envelope_fft_size
    coded = np.empty_like(band_db)
    for band in range(bands):
        position = BAND_INTERVAL * (band + 1) / bin_width
        below = int(position)
        share = position - below
        coded[:, band] = ((1.0 - share) * envelope_at(below * bin_width)
                          + share * envelope_at((below + 1) * bin_width))
    return coded


def coded_aperiodicity(x: np.ndarray, f0: np.ndarray, times: np.ndarray, fs: int,
                       fft_size: int) -> np.ndarray:
    """``pyworld.code_aperiodicity(pyworld.d4c(x, f0, times, fs, fft_size=fft_size), fs)`` for all frames at once.

    ``x`` is the signal, ``f0`` (0 on unvoiced frames) and ``times``
    (seconds) the frames, ``fft_size`` the spectral envelope's FFT size (it
    only matters for how the coding samples the aperiodicity, :func:`_code`).
    Returns float64 of shape (frames, bands), in dB.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    f0 = np.asarray(f0, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    bands = number_of_bands(fs)
    coded = np.full((len(f0), bands), UNVOICED_CODED)
    analysis_fft_size = _power_of_two_above(4.0 * fs / FLOOR_F0)
    voiced = np.flatnonzero(f0 > 0)
    for start in range(0, voiced.size, BLOCK_FRAMES):
        frames = voiced[start:start + BLOCK_FRAMES]
        periodic = _voicing_ratio(x, fs, f0[frames], times[frames]) > THRESHOLD
        frames = frames[periodic]
        if frames.size == 0:
            continue
        frame_f0 = np.maximum(f0[frames], FLOOR_F0)
        group_delay = _static_group_delay(x, fs, frame_f0, times[frames], analysis_fft_size)
        band_db = _band_aperiodicity(group_delay, frame_f0, fs, analysis_fft_size, bands)
        coded[frames] = _code(band_db, fs, fft_size)
    return coded
