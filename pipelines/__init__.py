"""The pipeline around `components`: stage flows and the plumbing they stand on.

    stages/    one thin Prefect flow per dvc.yaml stage (`stages.FLOWS`: name -> flow); a stage reads and
               writes artifacts, calls components and logs; it imports no other stage
    shared/    what more than one stage needs: measuring a candidate model, the synthesizer
    store/     the project's files: artifact paths and atomic writes, params, data readers, tables,
               the data contract, corrected labels
    tracking/  MLflow: runs, the model registry, the registered model's serving code
    running/   running stages: environment, Prefect, the warm stage server, the scheduled pipeline, and
               each stage's code deps derived from its imports (`running.deps`, which writes dvc.yaml's)
    commands/  commands that are not stages: `init`, `relabel`
    cli.py     the `mlstrategy` command; errors.py  the one error a user sees without a traceback

Stages import the plumbing and `components`; no stage imports another (the plumbing reaches stages only
through `stages.FLOWS`), `components` imports nothing of `pipelines`, and there is no import cycle
(`tests/unit/test_deps.py` checks all three).
"""
