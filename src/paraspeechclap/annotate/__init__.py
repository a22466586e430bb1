"""Corpus-scale style annotation: ``paraspeechclap annotate``.

Per clip: calibrated zero-shot labels of the model's attribute sets (abstaining below a confidence
threshold), DSP measurements (:mod:`paraspeechclap.audio.measure`), ParaSpeechCaps-style tags and
captions, and the embedding; written as a PSC manifest, Parquet shards, an error list and a run
record. Modules: :mod:`.inputs` (what is read), :mod:`.stage` (decode, measure, embed: the costly
part, resumable per shard), :mod:`.executors` (who runs it), :mod:`.labels` and :mod:`.finalize`
(labels, tags, captions, outputs), :mod:`.run` (the whole job).
"""

from .inputs import InputItem, items_from_dir, items_from_manifest
from .run import Settings, annotate

__all__ = ["InputItem", "Settings", "annotate", "items_from_dir", "items_from_manifest"]
