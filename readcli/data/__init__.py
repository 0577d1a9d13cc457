"""Dataset readers (QVHighlights-style jsonl, YouTube Highlights, TVSum, How2) and collation with masks."""
