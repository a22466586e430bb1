"""The attribute classification loss against a hand-written reference."""

from __future__ import annotations

import math

import torch

from paraspeechclap.losses.attributes import AttributeClassificationLoss, attribute_targets


class _Set:
    def __init__(self, name, candidates, field):
        self.name, self.candidates, self.field = name, candidates, field

    def gold(self, row):
        return row.get(self.field)


def test_targets_and_loss_match_a_reference():
    sets = [_Set("emo", ["angry", "happy", "neutral"], "emotion"), _Set("pitch", ["deep", "high"], "pitch"),
            _Set("unused", ["a", "b"], "nothing")]
    rows = [{"emotion": "happy", "pitch": "deep"}, {"emotion": "bored"}, {"pitch": "high"}, {"emotion": "neutral"}]
    targets = attribute_targets(rows, sets)
    assert [t.name for t in targets] == ["emo", "pitch"]  # no row labels "unused"
    assert targets[0].target.tolist() == [1, -1, -1, 2] and targets[1].target.tolist() == [0, -1, 1, -1]
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(4, 5, generator=g, requires_grad=True)
    cls = {"emo": torch.randn(3, 5, generator=g), "pitch": torch.randn(2, 5, generator=g)}
    scale = torch.tensor(7.0)
    loss = AttributeClassificationLoss(weight=0.5)(audio, cls, targets, scale)

    def cos(u, v):
        return float(u @ v / (u.norm() * v.norm()))

    per_set = []
    for t in targets:
        terms = []
        for i, y in enumerate(t.target.tolist()):
            if y < 0:
                continue
            logits = [7.0 * cos(audio[i].detach(), c) for c in cls[t.name]]
            terms.append(-logits[y] + math.log(sum(math.exp(v) for v in logits)))
        per_set.append(sum(terms) / len(terms))
    assert abs(loss.item() - 0.5 * sum(per_set) / len(per_set)) < 1e-5
    summed = AttributeClassificationLoss(weight=0.5, reduction="sum")(audio, cls, targets, scale)
    assert abs(summed.item() - 0.5 * sum(per_set)) < 1e-5
    loss.backward()
    assert audio.grad[1].abs().sum() == 0  # the row with no known label gets no gradient


def test_no_labels_gives_zero_connected_to_the_graph():
    audio = torch.randn(2, 3, requires_grad=True)
    loss = AttributeClassificationLoss()(audio, {}, [], torch.tensor(10.0))
    loss.backward()
    assert loss.item() == 0.0 and audio.grad is not None
