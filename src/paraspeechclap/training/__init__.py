"""Training: ``paraspeechclap train`` and its parts (see ``docs/training.md``).

- :mod:`.config`: run-config dataclasses, YAML loading with ``base:``, ``--set`` overrides.
- :mod:`.data`: data sources (manifest, Hugging Face, synthetic), plans, the training dataset.
- :mod:`.augment`: gain, ``prepare`` and random crop of a training clip; loudness relabelling.
- :mod:`.features`: the frozen-backbone feature cache.
- :mod:`.modules`: model construction and the module DDP wraps.
- :mod:`.loop`: the trainer (steps, checkpoints, resume, evaluation); :func:`.loop.train`.
- :mod:`.evaluate`: periodic dev metrics; :mod:`.logging`: metrics.jsonl, TensorBoard, progress.
- :mod:`.checkpoint`: atomic resumable checkpoints; :mod:`.optim`: optimiser and schedule.
- :mod:`.toy`: a toy labelled tone corpus for tests and benchmarks.
"""
