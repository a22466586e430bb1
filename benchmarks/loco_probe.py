"""What the frozen speech features can carry to an unseen corpus: leave-one-corpus-out linear probes.

Issue 18's plain target (4-class mean >= 0.60 on corpora never heard) has been missed by 20-odd recipes
that all train heads over the same frozen Whisper states. This asks the features directly: a standardised,
class-balanced logistic regression on every labelled clip of the *other* corpora (angry, happy, sad,
neutral; ``emospeech_in``'s "calm" left out), scored on the left-out corpus (4-class UAR over the classes
present, recall of sad), for feature sets that differ from the default model's:

- ``lite``: what the default model pools (Whisper base blocks 1-4, mean and standard deviation, each
  layer-normalised, plus the level and the F0 inputs);
- ``+prosody``: with 11 prosodic statistics measured here (:func:`prosody`: F0 spread, range, slope and
  frame-to-frame change in semitones, level spread and range, pauses, voicing rate and run length, voiced
  fraction, spectral tilt);
- other blocks (``blocks``), the spread alone, and the prosody alone;
- richer features that cost no more backbone compute (:func:`inner_features`): the feed-forward GELU
  activations inside blocks 1-4 (2048 wide), with or without the block outputs, and the block outputs
  layer-normalised frame by frame before pooling; and blocks 3-4 alone;
- ``speaker-centred``: each speaker's mean feature vector removed, in training and test (``both``) or in
  test only (``test``), as centring at inference does to a head that was or was not trained for it.

A probe is not the model (it sees all clips of the other corpora and no text), so its numbers bound what a
head over these features can do, not what the shipped model does.

    python benchmarks/loco_probe.py          # -> benchmarks/results/loco_probe.json (features cached in --cache)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paraspeechclap.centred_head import speaker_centred  # a speaker's lone row becomes zeros (nine speakers here)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, write_results  # noqa: E402

SUMMARY_CORPORA = ["ased", "emodb", "emovo", "savee", "urdu"]
TRAIN_ONLY = ["ucm_es", "emospeech_in"]
CLASSES = ["angry", "happy", "saddened", "neutral"]
BLOCKS = 7  # Whisper base: conv front end (0) and blocks 1-6
STATS = 2  # mean, standard deviation
WIDTH = 512
PROSODY = ["f0_std", "f0_range", "f0_slope", "f0_delta", "level_std", "level_range", "pauses", "voicing_rate",
           "voiced_run_s", "voiced_fraction", "alpha_ratio_db"]
LITE = (1, 2, 3, 4)  # the default model's blocks
INNER_BLOCKS = LITE  # whose inner states cost nothing more to pool
STATES, MEAN, MEAN_STD = ("states", (0, 1)), (0,), (0, 1)


@dataclass(frozen=True)
class Probe:
    """One feature set: ``blocks`` of each of ``sources``, ``(source, statistics)`` pairs (``"states"``: block
    outputs, as the model pools them; ``"ffn"``: the feed-forward's GELU activations inside each block;
    ``"frame_ln"``: block outputs layer-normalised frame by frame before pooling; statistics 0 mean, 1 standard
    deviation), then the level and F0 inputs and :func:`prosody` as chosen, with speaker ``centring``
    ``"none"``, ``"both"`` (training and test) or ``"test"``."""

    blocks: tuple[int, ...]
    sources: tuple[tuple[str, tuple[int, ...]], ...] = (STATES,)
    extras: bool = True
    prosody: bool = False
    centring: str = "none"


PROBES: dict[str, Probe] = {
    "lite": Probe(LITE),
    "lite+prosody": Probe(LITE, prosody=True),
    "prosody": Probe((), (), prosody=True),
    "lite, spread only": Probe(LITE, (("states", (1,)),)),
    "blocks 3-5": Probe((3, 4, 5)),
    "blocks 3-6": Probe((3, 4, 5, 6)),
    "blocks 1-6": Probe((1, 2, 3, 4, 5, 6)),
    "blocks 3-4 (no more compute)": Probe((3, 4)),
    "lite's feed-forward activations (mean)": Probe(LITE, (("ffn", MEAN),)),
    "lite's feed-forward activations (mean and spread)": Probe(LITE, (("ffn", MEAN_STD),)),
    "lite + its feed-forward activations (mean)": Probe(LITE, (STATES, ("ffn", MEAN))),
    "lite, states normalised per frame": Probe(LITE, (("frame_ln", MEAN_STD),)),
    "lite, speaker-centred (train and test)": Probe(LITE, centring="both"),
    "lite, speaker-centred (test only)": Probe(LITE, centring="test"),
}


# -- features -------------------------------------------------------------------------------------------------
def prosody(wav: np.ndarray) -> np.ndarray:
    """``(11,)`` prosodic statistics of a 16 kHz waveform (:data:`PROSODY` order), level-free.

    On the 20 ms grid of :func:`paraspeechclap.audio.pitch.frame_f0`, within the span from the first to the
    last frame within 35 dB of the loudest: semitone statistics of the voiced frames about their median,
    the spread and 10-90 % range of the active frames' level in dB, the share of quieter frames, voiced
    onsets per second and the mean voiced run, the voiced share, and the mean alpha ratio (1-5 kHz over
    50 Hz-1 kHz, dB) of the voiced frames.
    """
    from paraspeechclap.audio.pitch import frame_f0

    f0, _ = frame_f0(wav)
    hop, size, n = 320, 640, len(f0)
    x = np.pad(np.asarray(wav, np.float64), (0, max(0, size + hop * n - len(wav))))
    frames = x[np.arange(size)[None] + hop * np.arange(n)[:, None]]
    level = 10 * np.log10((frames ** 2).mean(1) + 1e-10)
    active = level >= level.max() - 35
    on = np.flatnonzero(active)
    span = slice(on[0], on[-1] + 1) if len(on) else slice(0, n)
    f0, level, active, frames = f0[span], level[span], active[span], frames[span]
    voiced = f0 > 0
    out = dict.fromkeys(PROSODY, 0.0)
    if voiced.sum() >= 3:
        st = np.clip(12 * np.log2(f0[voiced] / np.median(f0[voiced])), -12, 12)
        t = np.flatnonzero(voiced) * 0.02
        both = voiced[1:] & voiced[:-1]
        step = np.diff(12 * np.log2(np.where(voiced, f0, 1.0)))[both]
        out.update(f0_std=st.std(), f0_range=np.percentile(st, 90) - np.percentile(st, 10),
                   f0_slope=np.polyfit(t, st, 1)[0] if np.ptp(t) > 0.1 else 0.0,
                   f0_delta=np.abs(np.clip(step, -6, 6)).mean() if both.any() else 0.0)
    act = level[active]
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, voiced.astype(int), 0])))[::2]
    out.update(level_std=act.std(), level_range=np.percentile(act, 90) - np.percentile(act, 10),
               pauses=1 - active.mean(), voicing_rate=len(runs) / max(len(level) * 0.02, 0.02),
               voiced_run_s=runs.mean() * 0.02 if len(runs) else 0.0, voiced_fraction=voiced.mean())
    spec = np.abs(np.fft.rfft(frames * np.hanning(size), axis=1)) ** 2
    hz = np.fft.rfftfreq(size, 1 / 16000)
    low, high = spec[:, (hz >= 50) & (hz < 1000)].sum(1), spec[:, (hz >= 1000) & (hz < 5000)].sum(1)
    sel = voiced if voiced.any() else active
    if sel.any():
        out["alpha_ratio_db"] = float(np.mean(10 * np.log10((high[sel] + 1e-12) / (low[sel] + 1e-12))))
    return np.array([out[k] for k in PROSODY], dtype=np.float64)


def inner_features(enc: Any, wav: np.ndarray) -> dict[str, np.ndarray]:
    """``{"ffn": (4, 2, F), "frame_ln": (4, 2, D)}`` (Whisper base: F 2048, D 512): mean and standard deviation
    over a clip's frames (every 30 s window of it) of the feed-forward GELU activations inside blocks 1-4
    (:data:`INNER_BLOCKS`) and of those blocks' outputs layer-normalised frame by frame. ``enc``: a Whisper
    encoder pooling blocks 0 to at least 4 (``layers=[0, 1, ...]``)."""
    import torch
    from torch.nn import functional as F

    from paraspeechclap.training.features import split_windows

    moments: dict[str, Any] = {"ffn": 0.0, "frame_ln": 0.0}  # (4, 2, D): sums and sums of squares over frames
    frames = 0
    for w in split_windows(wav, enc.window_samples):
        mel = enc.prepare(w).features[None]
        states, _ = enc.hidden_states(mel, torch.tensor([mel.shape[-1]]))  # states[k]: block k's (1, T, D) output
        inner: dict[str, list[torch.Tensor]] = {"ffn": [], "frame_ln": []}
        for b in INNER_BLOCKS:
            block, x = enc.base.layers[b - 1], states[b - 1]
            mid = x + block.self_attn(block.self_attn_layer_norm(x))  # the block's own first half
            inner["ffn"].append(F.gelu(block.fc1(block.final_layer_norm(mid)))[0])
            inner["frame_ln"].append(F.layer_norm(states[b], states[b].shape[-1:])[0])
        for key, hs in inner.items():
            h = torch.stack(hs).double()  # (4, T, D)
            moments[key] = moments[key] + torch.stack([h.sum(1), (h ** 2).sum(1)], 1)
        frames += states[0].shape[1]
    out = {}
    for key, m in moments.items():
        mean = m[:, 0] / frames
        out[key] = torch.stack([mean, (m[:, 1] / frames - mean ** 2).clamp_min(0).sqrt()], 1).float().numpy()
    return out


def probe_encoder(layers: list[int], **options: Any) -> Any:
    """A Whisper base encoder set up as the default model's (its pooling, inputs and normalisation) pooling
    ``layers``, with any other spec ``options`` (e.g. ``merge_after``)."""
    from paraspeechclap.encoders.whisper import create_whisper_encoder

    return create_whisper_encoder("base", layers=layers, pooling="mean_std", combine="concat", level_input=True,
                                  pitch_input=True, pitch_statistic="trimmed_mean", normalize="peak",
                                  **options).eval()


def labelled_clips() -> Iterator[tuple[Path, dict[str, Any], str]]:
    """``(audio path, manifest row, 4-class label)`` of every labelled clip the probes read, in a fixed order
    (the rows of :func:`extract`'s arrays)."""
    from paraspeechclap.data.splits import load_shared_manifest
    from paraspeechclap.data.vocabulary import map_label

    every = load_shared_manifest(batches="all")
    for i in range(len(every)):
        row = every[i]
        label = map_label(row.get("emotion"), "emotion")
        if row["source"] in SUMMARY_CORPORA + TRAIN_ONLY and label in CLASSES:
            yield Path(every.audio_path(i)), row, label


def extract(cache: Path) -> dict[str, np.ndarray]:
    """Labelled clips of the summary and training corpora: ``states (N, 7, 2, 512)`` pooled Whisper base states,
    ``ffn (N, 4, 2, 2048)`` and ``frame_ln (N, 4, 2, 512)`` (:func:`inner_features`), ``extras (N, 3)`` level and
    F0 inputs, ``prosody (N, 11)``, ``label``, ``corpus``, ``speaker``; cached."""
    if cache.is_file():
        return dict(np.load(cache, allow_pickle=False))
    import torch

    from paraspeechclap.audio import load_audio
    from paraspeechclap.training.features import full_clip_features

    enc = probe_encoder(list(range(BLOCKS)))
    keys = ("states", "ffn", "frame_ln", "extras", "prosody", "label", "corpus", "speaker")
    cols: dict[str, list[Any]] = {k: [] for k in keys}
    for path, row, label in labelled_clips():
        wav = load_audio(str(path), min_samples=enc.min_samples)
        with torch.no_grad():
            f = full_clip_features(wav, enc, 16).reshape(-1).double().numpy()
            for key, value in inner_features(enc, wav).items():
                cols[key].append(value)
        cols["states"].append(f[: BLOCKS * STATS * WIDTH].reshape(BLOCKS, STATS, WIDTH).astype(np.float32))
        cols["extras"].append(f[BLOCKS * STATS * WIDTH:])
        cols["prosody"].append(prosody(wav))
        cols["label"].append(label)
        cols["corpus"].append(row["source"])
        cols["speaker"].append(str(row["speaker"]))
    data = {k: np.asarray(v) for k, v in cols.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **data)
    return data


# -- probes ---------------------------------------------------------------------------------------------------
def design(data: dict[str, np.ndarray], probe: Probe) -> np.ndarray:
    """``(N, F)``: the probe's blocks' statistics of each source, each layer-normalised over its width as the
    default model's head does, then the level and F0 inputs and the prosody, as chosen."""
    parts = []
    for source, stats in probe.sources:
        rows = list(probe.blocks) if source == "states" else [INNER_BLOCKS.index(b) for b in probe.blocks]
        s = data[source][:, rows][:, :, list(stats)].astype(np.float64)
        s = (s - s.mean(-1, keepdims=True)) / (s.std(-1, keepdims=True) + 1e-5)
        parts.append(s.reshape(len(s), -1))
    if probe.extras:
        parts.append(data["extras"])
    if probe.prosody:
        parts.append(data["prosody"])
    return np.hstack(parts)


def loco(x: np.ndarray, data: dict[str, np.ndarray], centring: str, c: float = 0.01) -> dict[str, Any]:
    """4-class UAR and sad recall of each summary corpus, probed by the other corpora's clips."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    corpus, label, spk = data["corpus"], data["label"], data["speaker"]
    centred = speaker_centred(x, spk) if centring != "none" else x
    per = {}
    for held in SUMMARY_CORPORA:
        tr, te = corpus != held, corpus == held
        xtr = (centred if centring == "both" else x)[tr]
        xte = centred[te]
        scale = StandardScaler().fit(xtr)
        # C scaled by the width, so wide and narrow feature sets are regularised alike
        clf = LogisticRegression(C=c * 4096 / x.shape[1], class_weight="balanced", max_iter=3000)
        pred = clf.fit(scale.transform(xtr), label[tr]).predict(scale.transform(xte))
        gold = label[te]
        recalls = {k: float(np.mean(pred[gold == k] == k)) for k in CLASSES if (gold == k).any()}
        per[held] = {"uar4": float(np.mean(list(recalls.values()))), "sad": recalls.get("saddened")}
    uar = [v["uar4"] for v in per.values()]
    return {"uar4_mean": float(np.mean(uar)), "uar4_min": float(min(uar)),
            "sad": float(np.mean([v["sad"] for v in per.values() if v["sad"] is not None])), "per_corpus": per}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "paraspeechclap" / "loco_probe_v2.npz",
                    help="where the extracted features are kept between runs")
    ap.add_argument("--probes", nargs="+", default=list(PROBES), metavar="NAME",
                    help="which probes, by name (quoted); default: all")
    add_json_arg(ap, "loco_probe.json")
    args = ap.parse_args()
    names = args.probes
    unknown = [n for n in names if n not in PROBES]
    if unknown:
        ap.error(f"--probes: unknown {unknown}; known: {list(PROBES)}")
    t0 = time.time()
    data = extract(args.cache)
    results: dict[str, Any] = {"corpora": SUMMARY_CORPORA, "train_only": TRAIN_ONLY, "clips": int(len(data["label"])),
                               "prosody": PROSODY, "probes": {}}
    for name in names:
        probe = PROBES[name]
        results["probes"][name] = {"blocks": list(probe.blocks),
                                   "sources": {src: [["mean", "std"][i] for i in st] for src, st in probe.sources},
                                   "inputs": probe.extras, "prosody": probe.prosody,
                                   "speaker_centring": probe.centring,
                                   **loco(design(data, probe), data, probe.centring)}
        r = results["probes"][name]
        print(f"{name:50s} mean {r['uar4_mean']:.3f} min {r['uar4_min']:.3f} sad {r['sad']:.3f}", flush=True)
    results["wall_s"] = round(time.time() - t0, 1)
    write_results(json_path(args), results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
