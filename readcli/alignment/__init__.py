"""Batched, masked entropic partial optimal transport and the PVLA loss."""
