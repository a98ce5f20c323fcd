"""dvc.yaml is the contract: each stage runs its module, declares exactly the params it reads,
and lists as deps every project module it imports (transitively), so editing library code
re-runs exactly the stages it affects."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

from reprotab.pipeline import STAGES as STAGE_ORDER
from tests.helpers import ROOT

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = list(STAGE_ORDER)  # reprotab.pipeline.run_stages runs them in this order
PACKAGES = ("reprotab", "stages")


def imported_modules(path: Path) -> set[str]:
    """Project modules a file imports anywhere (top level or inside functions): `import x.y`,
    `from x import y` (y may itself be a module) and `from x.y import z`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in PACKAGES and module_file(name) is not None}


def module_file(name: str, root: Path = ROOT) -> Path | None:
    path = root.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def import_closure(module: str, root: Path = ROOT) -> set[str]:
    """Every project file `module` needs, as repository-relative paths (package __init__ files
    included, since importing a submodule runs them)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        todo += sorted(imported_modules(module_file(name, root)))
    return {str(module_file(name, root).relative_to(root)) for name in seen}


def code_deps(entry: dict) -> set[str]:
    return {dep for dep in entry["deps"] if dep.endswith(".py")}


def test_stages_in_order():
    assert list(PIPELINE["stages"]) == STAGES


@pytest.mark.parametrize("stage", STAGES)
def test_stage_runs_its_module_and_declares_its_params(stage):
    entry = PIPELINE["stages"][stage]
    module = importlib.import_module(f"stages.{stage}")
    assert entry["cmd"] == f"python -m stages.{stage}"
    assert tuple(entry.get("params") or ()) == module.PARAMS


@pytest.mark.parametrize("stage", STAGES)
def test_stage_lists_every_module_it_imports(stage):
    needed = import_closure(f"stages.{stage}")
    declared = code_deps(PIPELINE["stages"][stage])
    assert needed - declared == set(), f"dvc.yaml stage {stage} misses code deps"
    assert declared - needed == set(), f"dvc.yaml stage {stage} lists code it does not import"


def test_closure_finds_a_dependency_removed_on_purpose(tmp_path):
    """The check above can fail: drop one transitive dep and the comparison sees it."""
    entry = PIPELINE["stages"]["train"]
    trimmed = {**entry, "deps": [d for d in entry["deps"] if d != "reprotab/model/decision.py"]}
    assert import_closure("stages.train") - code_deps(trimmed) == {"reprotab/model/decision.py"}


def test_every_stage_runs_after_validate():
    for name, entry in PIPELINE["stages"].items():
        if name != "validate":
            assert "reports/validate/params.json" in entry["deps"], name


def test_model_is_declared_as_an_artifact():
    assert PIPELINE["artifacts"]["model"] == {
        **PIPELINE["artifacts"]["model"],
        "path": "models/model.zip",
        "type": "model",
    }


def sync_code_deps(text: str) -> str:
    """dvc.yaml's text with each stage's code deps (its `- <path>.py` lines) replaced by the import
    closure, comments and every other line kept: what `python -m tests.unit.test_dvc_yaml` writes
    after a stage gains or loses an import."""
    lines, out, stage = text.splitlines(keepends=True), [], None
    for line in lines:
        code = line.split("#")[0].rstrip()
        if line.startswith("  ") and not line.startswith("   ") and code.endswith(":"):
            stage = code.strip()[:-1]
        item = line.strip()
        if stage in STAGES and item.startswith("- ") and item[2:].split("#")[0].strip().endswith(".py"):
            if not out or not out[-1].startswith("\0"):
                indent = line[: len(line) - len(line.lstrip())]
                own = f"stages/{stage}.py"  # first, then the library and stages/__init__.py
                paths = [own, *sorted(import_closure(f"stages.{stage}") - {own})]
                out += [f"\0{indent}- {path}\n" for path in paths]
            continue
        out.append(line)
    return "".join(line.lstrip("\0") for line in out)


def test_syncing_code_deps_keeps_a_correct_dvc_yaml():
    text = (ROOT / "dvc.yaml").read_text()
    assert sync_code_deps(text) == text


if __name__ == "__main__":  # rewrite dvc.yaml's code deps from the imports
    path = ROOT / "dvc.yaml"
    path.write_text(sync_code_deps(path.read_text()))


def test_sub_package_inits_hold_a_docstring_and_no_code():
    """A package's __init__.py runs whenever any of its modules is imported, so code in one would
    make every stage that imports a sibling depend on it; each holds only a line on what it keeps
    (which also spares DVC's warning about empty dependency files)."""
    for init in sorted((ROOT / "reprotab").glob("*/__init__.py")):
        body = ast.parse(init.read_text()).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr), f"{init.relative_to(ROOT)} holds code"
        assert isinstance(body[0].value, ast.Constant) and str(body[0].value.value).strip(), init
