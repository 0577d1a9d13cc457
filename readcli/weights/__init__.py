"""The weights every preset needs: what they are (`catalog`), whether they are here (`status`), and
fetching them (`http` for URLs with resume, `hub` for Hugging Face Hub ids), checked by `digest`.

Light at import: nothing here imports torch; huggingface_hub is imported inside the functions that
use it. `readcli models` and `readcli download` (docs/models.md) are the commands on top.
"""
