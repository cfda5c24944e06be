"""Molmo model service: config, presets, tokenizer, preprocessing, model and checkpoints.

Importing the package is cheap; torch-heavy modules (model, checkpoint) load on demand.
"""

from model_service.config import (
    ConnectorConfig,
    LLMConfig,
    MolmoConfig,
    PreprocessConfig,
    TokenizerConfig,
    VisionConfig,
)
from model_service.presets import PRESET_NAMES, get_preset

__all__ = [
    "PRESET_NAMES",
    "ConnectorConfig",
    "LLMConfig",
    "MolmoConfig",
    "PreprocessConfig",
    "TokenizerConfig",
    "VisionConfig",
    "get_preset",
]
