"""Metrics: QVHighlights (as the official evaluator), YouTube Highlights mAP, TVSum top-5 mAP, ROUGE.

Every metric takes plain rows (lists of dicts, as a training loop holds them) or rows read with
`read_jsonl` (whose errors then name file and line). Definitions and choices: docs/evaluation.md.
"""

from __future__ import annotations

from readcli.evaluation.qvhighlights import evaluate_qvhighlights, qvhighlights_report
from readcli.evaluation.rouge import rouge_scores
from readcli.evaluation.rows import Rows, read_jsonl
from readcli.evaluation.saliency import tvsum_top5_map, youtube_highlight_map
from readcli.evaluation.summaries import SUMMARY_FORMATS, pair_summaries, read_summary_file

__all__ = [
    "SUMMARY_FORMATS",
    "Rows",
    "evaluate_qvhighlights",
    "pair_summaries",
    "qvhighlights_report",
    "read_jsonl",
    "read_summary_file",
    "rouge_scores",
    "tvsum_top5_map",
    "youtube_highlight_map",
]
