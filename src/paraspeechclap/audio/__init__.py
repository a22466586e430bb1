"""Audio input: decoding, resampling to 16 kHz, down-mixing and validation."""

from .io import SAMPLE_RATE, AudioItem, describe_item, load_audio

__all__ = ["SAMPLE_RATE", "AudioItem", "describe_item", "load_audio"]
