"""The moment_detr backbone family (docs/backbones.md)."""
