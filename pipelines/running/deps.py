"""Each stage's code dependencies, derived from the imports of its flow module, and `dvc.yaml` kept in
step with them.

A stage's code is its flow module and every project module it imports, directly or through others,
at the top of a module or inside a function (the lazy imports that keep TensorFlow out of quick stages
count too: they run when the stage does), and the modules a module names in `CODE_DEPS` (code it uses
by path, such as the registered model's). A package's `__init__.py` counts when it holds more than a
docstring. `dvc.yaml` lists exactly these `.py` files under each stage's deps; its other deps (data,
templates, metrics) are kept as written. A test checks the two agree; `--write` makes them agree:

    python -m pipelines.running.deps           # list what dvc.yaml misses or names in vain; exit 1 if any
    python -m pipelines.running.deps --write   # rewrite dvc.yaml's code deps (comments kept)

Deriving needs only the standard library and `pipelines.stages`' table; reading dvc.yaml needs PyYAML,
rewriting it ruamel.yaml (both in the lock).
"""

from __future__ import annotations

import argparse
import ast
import functools
import sys
from collections.abc import Iterable
from pathlib import Path

from pipelines.stages import FLOWS, module_of

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pipelines", "components")
DVC_YAML = ROOT / "dvc.yaml"


def module_file(module: str) -> Path | None:
    """The source file of project module `module` (a package's `__init__.py`), or None."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def imports_of(module: str) -> frozenset[str]:
    """The project modules `module` imports anywhere in its source (packages included)."""
    path = module_file(module)
    if path is None:
        return frozenset()
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from its package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            # `from a.b import c`: c is a module of its own or a name in a.b
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif _declares_code_deps(node):
            names = [item.value for item in node.value.elts]  # type: ignore[attr-defined]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES and module_file(name) is not None:
                found.update(_with_parents(name))
    found.discard(module)
    return frozenset(found)


def _declares_code_deps(node: ast.AST) -> bool:
    """`CODE_DEPS = ("module", ...)`: modules a module uses by path rather than by import."""
    return (
        isinstance(node, ast.Assign)
        and any(isinstance(target, ast.Name) and target.id == "CODE_DEPS" for target in node.targets)
        and isinstance(node.value, ast.Tuple)
        and all(isinstance(item, ast.Constant) for item in node.value.elts)
    )


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _only_docstring(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def closure(module: str) -> set[str]:
    """`module` and every project module it reaches through imports."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imports_of(name))
    return seen


def code_files(module: str) -> list[Path]:
    """The files of `module`'s closure, relative to the project root, sorted; package `__init__.py`
    files that hold only a docstring left out."""
    files = set()
    for name in closure(module):
        path = module_file(name)
        if path is not None and not (path.name == "__init__.py" and _only_docstring(path)):
            files.add(path.relative_to(ROOT))
    return sorted(files)


def stage_code(stage: str) -> list[Path]:
    """Stage `stage`'s code dependencies: its flow module first, then the rest in path order."""
    own = module_file(module_of(stage)).relative_to(ROOT)  # type: ignore[union-attr]
    return [own, *(path for path in code_files(module_of(stage)) if path != own)]


def project_modules() -> list[str]:
    """Every module of the project's packages."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def import_cycles(modules: Iterable[str] | None = None) -> list[list[str]]:
    """The import cycles among `modules` (default: all of the project's), lazy imports included:
    strongly connected components of the import graph with more than one module, or a module importing
    itself. A package importing its own modules is not a cycle (Python imports the package first)."""
    modules = list(modules or project_modules())
    edges = {
        m: {n for n in imports_of(m) if n in modules and not m.startswith(f"{n}.") and n != m}
        for m in modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return cycles


def _is_code(dep: str) -> bool:
    return dep.endswith(".py") and dep.split("/")[0] in PACKAGES


def dvc_problems(dvc_yaml: Path = DVC_YAML) -> list[str]:
    """What `dvc_yaml`'s code deps miss or name in vain, stage by stage; empty when they agree."""
    import yaml

    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    problems = []
    for stage in FLOWS:
        if stage not in stages:
            problems.append(f"{dvc_yaml.name}: no stage {stage!r}")
            continue
        listed = {str(d) for d in stages[stage].get("deps", []) if _is_code(str(d))}
        derived = {str(p) for p in stage_code(stage)}
        problems += [f"{stage}: misses {path}" for path in sorted(derived - listed)]
        problems += [
            f"{stage}: lists {path}, which its flow does not import" for path in sorted(listed - derived)
        ]
    return problems


def rewrite_dvc_yaml(dvc_yaml: Path = DVC_YAML) -> bool:
    """Make each stage's code deps in `dvc_yaml` the derived ones (flow module first), keeping the other
    deps, their order and comments; True when the file changed."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    text = dvc_yaml.read_text()
    document = yaml.load(text)
    for stage in FLOWS:
        deps = document["stages"][stage]["deps"]
        code = [str(p) for p in stage_code(stage)]
        if [str(d) for d in deps if _is_code(str(d))] == code:
            continue
        # A comment after the last code dep introduces the deps that follow: it moves with it.
        last = max((i for i, d in enumerate(deps) if _is_code(str(d))), default=None)
        trailing = deps.ca.items.pop(last, None) if last is not None else None
        for i in reversed(range(len(deps))):
            if _is_code(str(deps[i])):
                del deps[i]
        for i, path in enumerate(code):
            deps.insert(i, path)
        if trailing is not None:
            deps.ca.items[len(code) - 1] = trailing
    from io import StringIO

    out = StringIO()
    yaml.dump(document, out)
    if out.getvalue() == text:
        return False
    dvc_yaml.write_text(out.getvalue())
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.running.deps",
        description="Check (or, with --write, rewrite) dvc.yaml's code deps against the stages' imports.",
    )
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    args = parser.parse_args(argv)
    if args.write:
        print("dvc.yaml rewritten" if rewrite_dvc_yaml() else "dvc.yaml already matches the imports")
        return 0
    problems = dvc_problems()
    for problem in problems:
        print(problem)
    if problems:
        print("fix: python -m pipelines.running.deps --write", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
