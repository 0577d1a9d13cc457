"""The summarization task of `readcli demo`: a tiny vision-guided BART pretrained on a synthetic cooking
world's source domain, adapted to three target worlds (README-design.md).

    task = VLSTask(config=vls_config("default"))   # or "quick"; picklable, plain settings
    task.prepare(cache)                             # world + pretrained backbone, cached; mastery
    task.run("partial", "read-pvla", 3e-3, seed, "dev")   # RunScores, per-example ROUGE
"""

from __future__ import annotations

from readcli.demo.vls.config import VLSConfig, quick_config, vls_config
from readcli.demo.vls.task import DEFAULT_METHODS, METRICS, VLS_METHODS, VLSTask

__all__ = ["DEFAULT_METHODS", "METRICS", "VLS_METHODS", "VLSConfig", "VLSTask", "quick_config", "vls_config"]
