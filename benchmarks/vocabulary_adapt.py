"""Can the text side alone learn the rest of the vocabulary? An experiment for issue 21 (dev only).

``vocabulary_probe.py`` shows the audio embedding already separates the recipe tags; this fine-tunes only
the text projection (the audio side, and so every audio embedding, stays as it is) on captions of the
tag-recipe clips of the training voices (``vocabulary.py``'s ``train`` clips, several paraphrased
ParaSpeechCaps-style wordings each, :func:`paraspeechclap.data.captions.describe_tags`), with the
symmetric contrastive loss at the model's own logit scale (same-caption pairs are not negatives), plus
a penalty ``reg * (1 - cos)`` that holds the captions the model was trained on (the synthetic plan's
wordings, :func:`paraspeechclap.data.captions.describe`) where they were. Reported, before and after:
``vocabulary.py``'s dev scores (held-out voices), the trained sets' zero-shot UARs on ``quality.py``'s
synthetic dev clips and on the real dev split (emotion, gender), and how far the held captions moved.

    python benchmarks/vocabulary_adapt.py                  # -> results/vocabulary_adapt_dev_fp32.json
    python benchmarks/vocabulary_adapt.py --reg 1 --steps 1200 --json /tmp/adapt.json
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, attribute_scores, json_path, model_fields, write_results  # noqa: E402
from quality import REAL_SETS, SYNTH_N, SYNTH_SETS, synthetic_manifest  # noqa: E402
from vocabulary import CLIPS, SETS, build, caption_retrieval, set_scores  # noqa: E402


def caption_bank(rows: list[dict[str, Any]], k: int) -> list[list[str]]:
    """``k`` seeded wordings of each clip's caption (its tags and gender)."""
    from paraspeechclap.data.captions import describe_tags

    return [[describe_tags(r["intrinsic_tags"], gender=r["gender"], rng=random.Random(f"{i}/{j}")) for j in range(k)]
            for i, r in enumerate(rows)]


def held_captions(n: int) -> list[str]:
    """Captions in the wordings of the training corpus: ``n`` planned synthetic styles, described."""
    from paraspeechclap.data.captions import describe
    from paraspeechclap.synth.grid import plan_styles

    styles = plan_styles(n, random.Random(7))
    return list(dict.fromkeys(describe({**s, "gender": ("male", "female")[j % 2]}, random.Random(j))
                              for j, s in enumerate(styles)))


def text_hidden(model: Any, texts: list[str]) -> Any:
    """``(M, H)`` text-backbone outputs (the projection's inputs) of ``texts``, as training caches them."""
    import torch

    from paraspeechclap.training.modules import FrozenTextCache

    return FrozenTextCache(model.text_branch)(texts, torch.device("cpu"))


def train_text_projection(model: Any, audio: Any, captions: Any, groups: list[Any], held: Any,
                          args: argparse.Namespace) -> list[dict[str, float]]:
    """Fit ``model.text_projection`` in place; ``audio (N, D)`` fixed embeddings, ``captions (N, K, H)``
    backbone outputs, ``groups`` a key per clip (clips with one key share a caption: not negatives),
    ``held (M, H)`` outputs of the captions to hold. Returns the loss every 100 steps."""
    import torch
    from torch.nn.functional import cross_entropy, normalize

    torch.manual_seed(args.seed)
    proj, scale = model.text_projection, float(model.logit_scale.detach())
    with torch.no_grad():
        proj.eval()
        held_before = normalize(proj(held), dim=-1)
    opt = torch.optim.Adam(proj.parameters(), lr=args.lr)
    log = []
    for step in range(args.steps):
        proj.train()
        idx = torch.randperm(len(audio))[: args.batch]
        text = normalize(proj(captions[idx, torch.randint(0, captions.shape[1], (len(idx),))]), dim=-1)
        key = [groups[i] for i in idx.tolist()]
        same = torch.tensor([[a == b and i != j for j, b in enumerate(key)] for i, a in enumerate(key)])
        logits = (scale * audio[idx] @ text.T).masked_fill(same, -1e4)
        target = torch.arange(len(idx))
        loss = (cross_entropy(logits, target) + cross_entropy(logits.T, target)) / 2
        pick = torch.randint(0, len(held), (128,))
        drift = (1 - (normalize(proj(held[pick]), dim=-1) * held_before[pick]).sum(-1)).mean()
        opt.zero_grad()
        (loss + args.reg * drift).backward()
        opt.step()
        if (step + 1) % 100 == 0:
            log.append({"step": step + 1, "contrastive": round(loss.item(), 4), "drift": round(drift.item(), 5)})
    proj.eval()
    return log


def scores(model: Any, dev: list[dict[str, Any]], dev_audio: np.ndarray,
           trained: dict[str, tuple[list[dict[str, Any]], np.ndarray, list[str]]]) -> dict[str, Any]:
    """The vocabulary's dev scores, and each ``trained`` group's ``(rows, audio, sets)`` zero-shot UARs."""
    model._text_cache.clear()  # the text side changed
    out = {"vocabulary": {s: set_scores(model, dev_audio, dev, s)["uar"] for s in SETS},
           "retrieval": caption_retrieval(model, dev_audio, dev)["audio_to_text"]}
    for group, (rows, audio, sets) in trained.items():
        out[group] = {s: (attribute_scores(model, audio, rows, s) or {}).get("uar") for s in sets}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--reg", type=float, default=10.0, help="weight of the held captions' cosine drift")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--wordings", type=int, default=8, help="caption wordings per clip")
    ap.add_argument("--held", type=int, default=1500, help="planned styles whose captions are held")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--save", default=None, help="save the adapted model here (save_pretrained)")
    add_json_arg(ap, "vocabulary_adapt_dev_{precision}.json")
    args = ap.parse_args()

    import torch

    from paraspeechclap import load_model
    from paraspeechclap.data.splits import load_shared_manifest

    model = load_model(args.model, precision="fp32")
    train_dir, train = build("train", CLIPS["train"], args.jobs)
    dev_dir, dev = build("dev", CLIPS["dev"], args.jobs)
    synth = synthetic_manifest("dev", SYNTH_N["dev"], args.jobs)
    real = load_shared_manifest("dev")

    def embed(paths: list[str]) -> np.ndarray:
        return np.asarray(model.embed_audio(paths, batch_size=16))

    dev_audio = embed([str(dev_dir / r["relative_audio_path"]) for r in dev])
    trained = {"trained_sets": ([synth[i] for i in range(len(synth))],
                                embed([str(synth.audio_path(i)) for i in range(len(synth))]), SYNTH_SETS),
               "real_dev": ([real[i] for i in range(len(real))],
                            embed([str(real.audio_path(i)) for i in range(len(real))]), REAL_SETS)}
    before = scores(model, dev, dev_audio, trained)
    audio = torch.tensor(embed([str(train_dir / r["relative_audio_path"]) for r in train]))
    bank = caption_bank(train, args.wordings)
    captions = text_hidden(model, [c for cs in bank for c in cs]).view(len(train), args.wordings, -1)
    held_text = held_captions(args.held)
    held = text_hidden(model, held_text)
    with torch.no_grad():
        held_before = torch.nn.functional.normalize(model.text_projection(held), dim=-1)
    log = train_text_projection(model, audio, captions, [(*r["intrinsic_tags"], r["gender"]) for r in train],
                                held, args)
    after = scores(model, dev, dev_audio, trained)
    with torch.no_grad():
        cos = (torch.nn.functional.normalize(model.text_projection(held), dim=-1) * held_before).sum(-1).numpy()
    for name, v in (("before", before), ("after", after)):
        print(f"{name:6s} " + "  ".join(f"{s} {u:.3f}" for s, u in v["vocabulary"].items())
              + f"  R@1 {v['retrieval']['R@1']:.3f} R@10 {v['retrieval']['R@10']:.3f} | trained: "
              + "  ".join(f"{s} {u:.3f}" for s, u in v["trained_sets"].items() if u is not None) + " | real dev: "
              + "  ".join(f"{s} {u:.3f}" for s, u in v["real_dev"].items() if u is not None))
    print(f"held captions: cosine to before mean {cos.mean():.4f}, min {cos.min():.4f} ({len(held_text)} captions)")
    if args.save:
        model.save_pretrained(args.save)
    write_results(json_path(args, precision="fp32"), {
        **model_fields(model), "settings": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "train_clips": len(train), "dev_clips": len(dev), "synthetic_dev_clips": len(synth),
        "real_dev_clips": len(real),
        "before": before, "after": after, "held_cosine": {"mean": float(cos.mean()), "min": float(cos.min()),
                                                          "captions": len(held_text)}, "log": log})
    return 0


if __name__ == "__main__":
    sys.exit(main())
