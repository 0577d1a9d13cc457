"""One module per command: plain functions from a typed request to a typed result. No printing."""
