"""Style data: manifests, validation, splits, vocabulary, attribute sets, captions, samplers, mixing.

This package ``__init__`` imports nothing heavy; import the submodules you need, e.g.
``from paraspeechclap.data.manifest import load_manifest`` or
``from paraspeechclap.data.captions import describe``.
"""
