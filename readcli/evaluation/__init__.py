"""Metrics: QVHighlights (identical to the official evaluator), YouTube Highlights mAP, TVSum top-5 mAP, ROUGE."""
