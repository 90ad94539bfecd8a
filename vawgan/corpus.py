"""Corpus layouts → lists of utterances, deterministic splits and parallel pairs.

Three layouts are recognised:

* ``speaker_dirs`` — ``<root>/<speaker>/<utt>.wav`` (the shared corpora, the
  natural corpus in the repository's ``data/arctic``),
* ``vcc``          — VCC2016/2018: ``<root>/<SPK>/<utt>.wav`` (same shape, kept as a name),
* ``arctic``       — official CMU ARCTIC: ``<root>/cmu_us_<spk>_arctic/wav/arctic_a0001.wav``.

Recordings may be WAV or FLAC (:data:`AUDIO_SUFFIXES`).

Splits depend only on the utterance id, so the same sentence lands in the same
split for every speaker — the eval split is parallel across speakers. By
default the id is hashed (adding a speaker never moves an utterance between
splits); a config may instead fix id ranges per split (:func:`split_by_ranges`),
as the ARCTIC recipe does.

Two training protocols: *parallel*, where every speaker trains on all of its
train sentences, and *non-parallel*, where each train sentence is kept by one
speaker only (:func:`non_parallel_train`).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from vawgan.errors import VawganError
from vawgan.utils import atomic_path

SPLITS = ("train", "dev", "eval")
PROTOCOLS = ("parallel", "non_parallel")
AUDIO_SUFFIXES = (".wav", ".flac")
_ARCTIC_DIR = re.compile(r"^cmu_us_(?P<spk>[a-z0-9]+)_arctic$")
ARCTIC_URL = "http://festvox.org/cmu_arctic/cmu_arctic/packed/cmu_us_{speaker}_arctic-0.95-release.tar.bz2"


@dataclass(frozen=True)
class Utterance:
    """One recording: who speaks, which sentence, where the file is, which split."""

    speaker: str
    utt_id: str
    path: Path
    split: str = "train"


def default_corpus_root() -> Path | None:
    """The shared Flite corpus beside the checkout (``../shared/data/speech/flite``), if present.

    ``VAWGAN_CORPUS`` overrides it. Looked up relative to the current directory
    and to the package source, so it works from the repository root, from a
    recipe folder and from an installed checkout.
    """
    env = os.environ.get("VAWGAN_CORPUS")
    if env:
        return Path(env)
    candidates = []
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        for up in (base, *base.parents):
            candidates.append(up.parent / "shared" / "data" / "speech" / "flite")
    for cand in candidates:
        if cand.is_dir():
            return cand
    return None


def resolve_corpus_root(root: str | os.PathLike | None) -> Path:
    """``root`` if given, else the default; a clear error if neither exists."""
    if root is None:
        found = default_corpus_root()
        if found is None:
            raise VawganError("no corpus given and the shared corpus (../shared/data/speech/flite) is absent; "
                              "pass --corpus DIR (one folder per speaker, CMU ARCTIC or VCC layout) "
                              "or set VAWGAN_CORPUS")
        return found
    root = Path(root)
    if not root.is_dir():
        raise VawganError(f"{root}: corpus folder not found; pass --corpus DIR with one folder per speaker")
    return root


def detect_layout(root: Path) -> str:
    """``arctic`` when ``cmu_us_*_arctic`` folders are present, else ``speaker_dirs``."""
    if any(_ARCTIC_DIR.match(p.name) for p in root.iterdir() if p.is_dir()):
        return "arctic"
    return "speaker_dirs"


def split_of(utt_id: str, dev_fraction: float = 0.1, eval_fraction: float = 0.1) -> str:
    """The split of an utterance id: a stable hash mapped to [0, 1)."""
    h = int.from_bytes(hashlib.sha1(utt_id.encode()).digest()[:8], "big") / 2 ** 64
    if h < eval_fraction:
        return "eval"
    if h < eval_fraction + dev_fraction:
        return "dev"
    return "train"


def split_by_ranges(utt_id: str, ranges: dict[str, list[list[str]]]) -> str | None:
    """The split whose ``[first, last]`` id ranges hold ``utt_id`` (eval, then dev, then train), else None.

    Ids are compared as strings, which orders zero-padded ids such as
    ``arctic_a0001`` … ``arctic_a0593`` correctly.
    """
    for split in ("eval", "dev", "train"):
        for first, last in ranges.get(split, ()):
            if first <= utt_id <= last:
                return split
    return None


def check_split_ranges(ranges: dict[str, list[list[str]]], where: str = "corpus.split_ranges") -> None:
    """One-line errors for a malformed ranges mapping (unknown split, a range that is not [first, last])."""
    if not isinstance(ranges, dict):
        raise VawganError(f"{where}: expected a mapping of split -> list of [first, last] id ranges")
    for split, spans in ranges.items():
        if split not in SPLITS:
            raise VawganError(f"{where}: unknown split {split!r}; known: {', '.join(SPLITS)}")
        for span in spans or ():
            if not (isinstance(span, (list, tuple)) and len(span) == 2 and span[0] <= span[1]):
                raise VawganError(f"{where}.{split}: {span!r} is not a [first, last] id range with first <= last")


def non_parallel_train(utterances: list[Utterance]) -> list[Utterance]:
    """The train utterances of the non-parallel protocol: each sentence id kept by exactly one speaker.

    The train sentences are shared out in equal parts. Speakers choose in order
    of how few train sentences they have (then by name); each keeps the first
    ⌈m / k⌉ of its own sentences that nobody took before, where m counts the
    sentences not yet taken and k the speakers still to choose. On the ARCTIC
    recipe's train split (487 sentences by bdl and slt, 24 of them by clb too)
    clb keeps all of its 24, bdl the first 232 of the rest and slt the last 231. Dev and eval
    utterances are not touched: they stay parallel for evaluation.
    """
    train_ids: dict[str, list[str]] = {}
    for u in utterances:
        if u.split == "train":
            train_ids.setdefault(u.speaker, []).append(u.utt_id)
    order = sorted(train_ids, key=lambda spk: (len(train_ids[spk]), spk))
    untaken = {uid for ids in train_ids.values() for uid in ids}
    kept: dict[str, set[str]] = {}
    for position, speaker in enumerate(order):
        share = -(-len(untaken) // (len(order) - position))
        kept[speaker] = set(sorted(uid for uid in train_ids[speaker] if uid in untaken)[:share])
        untaken -= kept[speaker]
    return [u for u in utterances if u.split == "train" and u.utt_id in kept[u.speaker]]


def shared_train_sentences(utterances: list[Utterance]) -> list[str]:
    """Sentence ids that more than one speaker has among ``utterances`` (empty for a non-parallel manifest)."""
    speakers_of: dict[str, set[str]] = {}
    for u in utterances:
        speakers_of.setdefault(u.utt_id, set()).add(u.speaker)
    return sorted(uid for uid, spk in speakers_of.items() if len(spk) > 1)


def discover(root: str | os.PathLike | None = None, layout: str = "auto", speakers: list[str] | None = None,
             dev_fraction: float = 0.1, eval_fraction: float = 0.1,
             split_ranges: dict[str, list[list[str]]] | None = None,
             speaker_split_ranges: dict[str, dict[str, list[list[str]]]] | None = None) -> list[Utterance]:
    """All utterances under ``root``, sorted by speaker then id, each with its split.

    ``speakers`` keeps only those speakers (an unknown one is an error listing
    the speakers found). With ``split_ranges`` (or a speaker's own entry in
    ``speaker_split_ranges``) splits come from id ranges
    (:func:`split_by_ranges`) and ids outside every range are left out;
    otherwise from the hash of the id (:func:`split_of`).
    """
    root = resolve_corpus_root(root)
    if layout == "auto":
        layout = detect_layout(root)
    found: dict[str, list[Path]] = {}
    if layout in ("speaker_dirs", "vcc"):
        for spk_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            wavs = _audio_files(spk_dir)
            if wavs:
                found[spk_dir.name] = wavs
    elif layout == "arctic":
        for spk_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            m = _ARCTIC_DIR.match(spk_dir.name)
            if m:
                wavs = _audio_files(spk_dir / "wav")
                if wavs:
                    found[m.group("spk")] = wavs
    else:
        raise VawganError(f"corpus layout {layout!r} is not one of auto, speaker_dirs, vcc, arctic")
    if not found:
        raise VawganError(f"{root}: no .wav or .flac files found in the {layout} layout "
                          "(expected <root>/<speaker>/<utt>.wav or cmu_us_<spk>_arctic/wav/*.wav)")
    if speakers:
        missing = [s for s in speakers if s not in found]
        if missing:
            raise VawganError(f"speaker(s) {missing} not in {root}; found: {', '.join(sorted(found))}")
        found = {s: found[s] for s in speakers}
    speaker_split_ranges = speaker_split_ranges or {}
    for where, ranges in [("corpus.split_ranges", split_ranges),
                          *((f"corpus.speaker_split_ranges.{s}", r) for s, r in speaker_split_ranges.items())]:
        if ranges is not None:
            check_split_ranges(ranges, where)
    utterances = []
    for spk in sorted(found):
        ranges = speaker_split_ranges.get(spk, split_ranges)
        for wav in found[spk]:
            split = (split_by_ranges(wav.stem, ranges) if ranges is not None
                     else split_of(wav.stem, dev_fraction, eval_fraction))
            if split is not None:
                utterances.append(Utterance(spk, wav.stem, wav, split))
    return utterances


def _audio_files(folder: Path) -> list[Path]:
    """The recordings in ``folder`` (:data:`AUDIO_SUFFIXES`), sorted; an id present as both WAV and FLAC is an error."""
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    twice = sorted(stem for stem, n in Counter(p.stem for p in files).items() if n > 1)
    if twice:
        raise VawganError(f"{folder}: {twice[0]!r} is there in two formats; keep one file per utterance")
    return files


def parallel_pairs(utterances: list[Utterance], source: str, target: str,
                   split: str | None = "eval") -> list[tuple[Utterance, Utterance]]:
    """(source, target) utterance pairs with the same id, optionally within one split."""
    by_id = {(u.speaker, u.utt_id): u for u in utterances if split is None or u.split == split}
    return [(by_id[(source, uid)], by_id[(target, uid)])
            for (spk, uid) in sorted(by_id) if spk == source and (target, uid) in by_id]


def write_manifest(utterances: list[Utterance], path: str | os.PathLike) -> None:
    """Write ``speaker, utt_id, split, path`` as TSV, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["speaker", "utt_id", "split", "path"])
        for u in utterances:
            writer.writerow([u.speaker, u.utt_id, u.split, str(u.path)])


def write_manifests(utterances: list[Utterance], out_dir: str | os.PathLike,
                    protocol: str = "parallel") -> dict[str, list[Utterance]]:
    """Write a recipe's manifests into ``out_dir`` and return them by name.

    ``all.tsv`` lists every utterance (the features of all of them are
    extracted); ``train.tsv``, ``dev.tsv`` and ``eval.tsv`` the splits, where
    ``train.tsv`` follows the protocol. With ``non_parallel`` no sentence is
    shared between speakers in ``train.tsv``, and ``train_parallel.tsv`` keeps
    every train sentence for the baselines that need parallel pairs (the GMM).
    """
    if protocol not in PROTOCOLS:
        raise VawganError(f"corpus.protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    out_dir = Path(out_dir)
    manifests = {"all": utterances}
    for split in SPLITS:
        manifests[split] = [u for u in utterances if u.split == split]
    if protocol == "non_parallel":
        manifests["train_parallel"] = manifests["train"]
        manifests["train"] = non_parallel_train(utterances)
    elif (out_dir / "train_parallel.tsv").exists():  # left by an earlier non-parallel run into the same folder
        (out_dir / "train_parallel.tsv").unlink()
    for name, subset in manifests.items():
        write_manifest(subset, out_dir / f"{name}.tsv")
    return manifests


def read_manifest(path: str | os.PathLike, split: str | None = None) -> list[Utterance]:
    """Read a manifest written by :func:`write_manifest` (optionally one split)."""
    path = Path(path)
    if not path.is_file():
        raise VawganError(f"{path}: manifest not found; run `vawgan prepare` (recipe stage 0) first")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f, delimiter="\t")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error):
        raise VawganError(f"{path}: not a vawgan manifest (not tab-separated text); give the .tsv that "
                          "`vawgan prepare` writes") from None
    if set(reader.fieldnames or ()) != {"speaker", "utt_id", "split", "path"}:
        raise VawganError(f"{path}: not a vawgan manifest (expected columns speaker, utt_id, split, path)")
    for number, row in enumerate(rows, start=2):
        for column in ("speaker", "utt_id"):
            if not is_plain_name(row[column]):
                raise VawganError(f"{path}: line {number}: {column} {row[column]!r} is not a plain name (it names "
                                  "the output files: no '/', '\\' or leading '.'); fix the manifest")
    return [Utterance(r["speaker"], r["utt_id"], Path(r["path"]), r["split"])
            for r in rows if split is None or r["split"] == split]


def is_plain_name(name: str | None) -> bool:
    """Whether ``name`` (a speaker or utterance id) can name a file inside an output folder and nothing else.

    Ids become ``<out>/<speaker>/<utt_id>.npz``: a ``/`` or ``..`` in them would
    write outside the folder, a leading ``.`` would hide the file.
    """
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


def download_arctic(speaker: str, dest: str | os.PathLike) -> Path:
    """Download and unpack one CMU ARCTIC speaker from festvox.org into ``dest``.

    Returns ``dest``, which then holds ``cmu_us_<speaker>_arctic/wav/*.wav`` (the
    ``arctic`` layout). Never called by tests or CI. Safe to interrupt and call
    again: the archive appears only once it is complete (and is not fetched a
    second time), and it is unpacked into a temporary folder that replaces the
    speaker's folder only when the unpacking has finished.
    """
    import shutil
    import tarfile
    import tempfile

    dest = Path(dest)
    name = f"cmu_us_{speaker}_arctic"
    if (dest / name / "wav").is_dir():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / f"{name}.tar.bz2"
    if not archive.is_file():
        url = ARCTIC_URL.format(speaker=speaker)
        with atomic_path(archive) as tmp:
            try:
                urllib.request.urlretrieve(url, tmp)
            except OSError as exc:
                raise VawganError(f"could not download {url} ({exc}); download it by hand into {dest}") from None
    with tempfile.TemporaryDirectory(dir=dest, prefix=f".{name}.") as unpacked:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise VawganError(f"{archive}: not a readable CMU ARCTIC archive ({exc}); delete it and "
                              "download again") from None
        if not (Path(unpacked) / name / "wav").is_dir():
            raise VawganError(f"{archive}: holds no {name}/wav folder; is {speaker!r} a CMU ARCTIC speaker?")
        if (dest / name).exists():  # what an interrupted earlier unpacking left
            shutil.rmtree(dest / name)
        (Path(unpacked) / name).rename(dest / name)
    return dest
