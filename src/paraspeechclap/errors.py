"""Exception types. Every error a user can cause derives from :class:`ParaSpeechCLAPError`.

The CLI turns these into a one-line ``error: ...`` message and a non-zero exit code, so the
message must name the offending file, field or item and say what is wrong with it.
"""

from __future__ import annotations


class ParaSpeechCLAPError(Exception):
    """Base class of all user-facing errors."""


class AudioError(ParaSpeechCLAPError):
    """An audio item is missing, unreadable, empty, silent, too short or not finite."""


class InputError(ParaSpeechCLAPError):
    """A caption, candidate list, manifest field or other argument is invalid."""


class ModelError(ParaSpeechCLAPError):
    """A model name, directory, backbone or configuration cannot be resolved."""


class CheckpointError(ModelError):
    """A checkpoint file is not a checkpoint or does not match the model it is loaded into."""


class ConfigError(ParaSpeechCLAPError):
    """A configuration file or override is invalid (unknown key, wrong type, missing value)."""
