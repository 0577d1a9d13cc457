"""The umt backbone family (docs/backbones.md)."""
