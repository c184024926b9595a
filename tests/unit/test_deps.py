"""The house's rules, read from the code: dvc.yaml's code deps are the stages' imports, no stage imports
another, no import cycles, components know nothing of pipelines, Prefect or MLflow, and the stage server
imports nothing of the project."""

import ast
import shutil
from pathlib import Path

import pytest

from pipelines.running import deps
from pipelines.stages import FLOWS, STAGES, module_of

ROOT = Path(__file__).resolve().parents[2]


def test_dvc_yaml_lists_exactly_each_stages_code():
    assert deps.dvc_problems() == []


def test_a_dep_removed_from_dvc_yaml_is_named(tmp_path):
    copy = tmp_path / "dvc.yaml"
    shutil.copy(ROOT / "dvc.yaml", copy)
    text = copy.read_text()
    line = "      - pipelines/store/tables.py\n"
    start = text.index("  evaluate:")
    at = text.index(line, start)
    copy.write_text(text[:at] + text[at + len(line) :])
    assert deps.dvc_problems(copy) == ["evaluate: misses pipelines/store/tables.py"]


def test_a_dep_no_flow_imports_is_named(tmp_path):
    copy = tmp_path / "dvc.yaml"
    text = (ROOT / "dvc.yaml").read_text()
    at = text.index("      - pipelines/stages/diagnose.py\n") + len("      - pipelines/stages/diagnose.py\n")
    copy.write_text(text[:at] + "      - pipelines/stages/train.py\n" + text[at:])
    assert deps.dvc_problems(copy) == [
        "diagnose: lists pipelines/stages/train.py, which its flow does not import"
    ]


def test_rewriting_restores_the_derived_deps_and_keeps_comments(tmp_path):
    copy = tmp_path / "dvc.yaml"
    text = (ROOT / "dvc.yaml").read_text()
    copy.write_text(text.replace("      - components/training.py\n", "", 1))
    assert deps.dvc_problems(copy)
    assert deps.rewrite_dvc_yaml(copy)
    assert deps.dvc_problems(copy) == []
    assert copy.read_text() == text


def test_imports_inside_functions_and_declared_code_count():
    # components.sweep imports training inside run_trial only; the registry logs serving.py by path.
    assert Path("components/training.py") in deps.code_files("components.sweep")
    assert Path("pipelines/tracking/serving.py") in deps.stage_code("report")


def test_the_flow_module_comes_first():
    for stage in STAGES:
        assert deps.stage_code(stage)[0] == Path(*module_of(stage).split(".")).with_suffix(".py")


def test_every_stage_has_its_flow():
    for stage, target in FLOWS.items():
        module, _, name = target.partition(":")
        tree = ast.parse((ROOT / Path(*module.split("."))).with_suffix(".py").read_text())
        assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, stage


def test_no_stage_imports_another():
    stage_modules = {module_of(stage) for stage in STAGES}
    for module in stage_modules:
        assert not deps.imports_of(module) & (stage_modules - {module}), module


def test_no_import_cycles():
    assert deps.import_cycles() == []


def test_a_cycle_would_be_found(monkeypatch):
    real = deps.imports_of

    def with_cycle(module: str) -> frozenset[str]:
        extra = {"components.config": {"components.training"}}.get(module, set())
        return real(module) | extra

    monkeypatch.setattr(deps, "imports_of", with_cycle)
    cycles = deps.import_cycles()
    assert any({"components.config", "components.training"} <= set(cycle) for cycle in cycles)


@pytest.mark.parametrize("module", [m for m in deps.project_modules() if m.startswith("components")])
def test_components_import_no_pipelines_prefect_or_mlflow(module):
    path = deps.module_file(module)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    assert not found & {"pipelines", "prefect", "mlflow"}


def test_the_stage_server_imports_nothing_of_the_project():
    assert deps.imports_of("pipelines.running.stage_server") == frozenset()
