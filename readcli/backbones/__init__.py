"""Backbones: Moment-DETR, UMT and vision-guided BART/T5, with a registry of presets."""
