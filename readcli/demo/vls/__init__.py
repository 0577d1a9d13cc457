"""The summarization task of `readcli demo`: a tiny vision-guided BART on a synthetic cooking world."""
