"""Pretext objectives: each a pure nn.Module, images in, loss + diagnostics out."""

from .part import PARTModel, PARTOutput, translation_metrics

__all__ = ["PARTModel", "PARTOutput", "translation_metrics"]
