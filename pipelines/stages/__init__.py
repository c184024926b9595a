"""The stage flows: one module per `dvc.yaml` stage, each thin and importing no other stage.

`FLOWS` is the one table from a stage's name to its Prefect flow, in pipeline order. `dvc.yaml` runs each as
`mlstrategy stage NAME`; its code deps are derived from the flow module's imports
(`python -m pipelines.running.deps --write`), and a test checks that they agree.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> "module:flow"; the modules are imported only when their stage runs.
FLOWS: dict[str, str] = {
    "ingest": "pipelines.stages.ingest:ingest_flow",
    "validate": "pipelines.stages.validate:validate_flow",
    "split": "pipelines.stages.split:split_flow",
    "synthesize": "pipelines.stages.synthesize:synthesize_flow",
    "train": "pipelines.stages.train:train_flow",
    "compare": "pipelines.stages.compare:compare_flow",
    "evaluate": "pipelines.stages.evaluate:evaluate_flow",
    "diagnose": "pipelines.stages.diagnose:diagnose_flow",
    "analyze": "pipelines.stages.analyze:analyze_flow",
    "sweep": "pipelines.stages.sweep:sweep_flow",
    "improve": "pipelines.stages.improve:improve_flow",
    "report": "pipelines.stages.report:report_flow",
}
STAGES = tuple(FLOWS)


def module_of(stage: str) -> str:
    """The dotted name of `stage`'s flow module."""
    return FLOWS[stage].partition(":")[0]


def flow_of(stage: str) -> Any:
    """`stage`'s Prefect flow (importing its module)."""
    module, _, name = FLOWS[stage].partition(":")
    return getattr(importlib.import_module(module), name)
