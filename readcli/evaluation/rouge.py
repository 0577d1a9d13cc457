"""ROUGE-1/2/L F1 for video-language summarization, via rouge-score with the Porter stemmer.

Mean F1 over (prediction, reference) pairs, times 100, 2 decimals: keys `rouge1`, `rouge2`, `rougeL`.
`rougeL` is sentence-level LCS (not `rougeLsum`), the variant the How2 summarization papers report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from readcli.errors import InvalidValueError
from readcli.evaluation.ranking import percent

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 (percent, 2 decimals) of predictions[i] against references[i]."""
    if len(predictions) != len(references):
        raise InvalidValueError(
            f"{len(predictions)} predictions but {len(references)} references: "
            "give one reference per prediction"
        )
    if not predictions:
        raise InvalidValueError("no summaries to score: give at least one prediction and reference")
    means = rouge_f1_per_pair(predictions, references).mean(0)  # (3,)
    return {name: percent(float(value)) for name, value in zip(ROUGE_TYPES, means, strict=True)}


def rouge_f1_per_pair(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """(pairs, 3) ROUGE-1/2/L F1 in [0, 1] of predictions[i] against references[i] (ROUGE_TYPES order)."""
    # lazy: rouge-score pulls in nltk, which a training loop scoring grounding does not need
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    f1 = np.zeros((len(predictions), len(ROUGE_TYPES)))  # (pairs, 3)
    for i, (prediction, reference) in enumerate(zip(predictions, references, strict=True)):
        scores = scorer.score(reference, prediction)  # rouge-score takes (target, prediction)
        f1[i] = [scores[name].fmeasure for name in ROUGE_TYPES]
    return f1
