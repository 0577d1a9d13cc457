"""The vision_guided backbone family (docs/backbones.md)."""
