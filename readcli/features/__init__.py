"""Video decoding, CLIP image and token-level text features, and the feature-file format."""
