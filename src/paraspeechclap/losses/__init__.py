"""Training objectives: contrastive InfoNCE, tag classification, and the all-gather they share."""

from .contrastive import INIT_LOG_LOGIT_SCALE, ContrastiveLoss, LossConfigError, clamp_logit_scale_
from .gather import gather_features, gather_objects
from .multitask import MultiTaskLoss, TagClassificationLoss, draw_tag_prompts, normalize_tag

__all__ = [
    "INIT_LOG_LOGIT_SCALE",
    "ContrastiveLoss",
    "LossConfigError",
    "MultiTaskLoss",
    "TagClassificationLoss",
    "clamp_logit_scale_",
    "draw_tag_prompts",
    "gather_features",
    "gather_objects",
    "normalize_tag",
]
