"""The words of a query as CLIP's tokenizer split it: one label per token row of its features.

`ClipEncoder.encode_query` gives one row per token, SOT and EOT included; `inspect-ot` names those rows
by these labels instead of their index. A word piece that continues a word (its predecessor did not
end the word) is shown as it is, e.g. "na" "ï" "vely" for "naïvely"; a piece holding part of a
character shows its bytes (\\xe6\\x9c).
"""

from __future__ import annotations

from typing import Any

SOT_LABEL, EOT_LABEL = "<start>", "<end>"
_WORD_END = "</w>"


def piece_text(tokenizer: Any, token_id: int) -> str:
    """One BPE piece as text: CLIP's byte-level alphabet decoded, the end-of-word mark dropped."""
    if token_id == tokenizer.sot_token_id:
        return SOT_LABEL
    if token_id == tokenizer.eot_token_id:
        return EOT_LABEL
    piece = str(tokenizer.decoder[token_id]).removesuffix(_WORD_END)
    raw = bytearray(tokenizer.byte_decoder[c] for c in piece)
    return raw.decode("utf-8", errors="backslashreplace")  # part of a character: its bytes


def token_labels(encoder: Any, query: str) -> list[str]:
    """Labels of the rows `encoder.encode_query(query)` returns (same tokenisation and truncation)."""
    ids, _dropped = encoder.tokenize_query(query)
    return [piece_text(encoder.tokenizer, int(i)) for i in ids]
