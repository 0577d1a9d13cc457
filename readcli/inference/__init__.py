"""Inference over whole videos: sliding windows over a backbone's clip limit, merged back to absolute time."""
