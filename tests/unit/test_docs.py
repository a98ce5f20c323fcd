"""The docs site's generated pages hold every field and command the code has, and the README's links
into docs/ resolve. The params reference (docs/params.md) is rendered by docs/hooks.py from the typed
params models at build time; these tests run the renderer directly, so a field it fails to render
fails here, not only in the site."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

import pytest
from pydantic import BaseModel

from reprotab.cli import COMMANDS
from reprotab.params import loader, sections
from tests.helpers import ROOT

DOCS = ROOT / "docs"


def load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hooks() -> ModuleType:
    return load_hooks()


def every_section() -> list[type[BaseModel]]:
    """Every params section the code defines, found independently of the renderer's own walk."""
    found = [loader.Params]
    for module in (sections, loader):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, sections.Section)
                and value.__module__ == module.__name__
                and value not in (sections.Section, *found)
            ):
                found.append(value)
    return found


def blocks(markdown: str) -> dict[str, str]:
    """The rendered reference split into one block per section, keyed by the class named in its heading."""
    parts = re.split(r"^### .*\((\w+)\)$", markdown, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_field_of_every_section_is_in_the_params_reference(hooks):
    rendered = blocks(hooks.render_params_reference())
    for cls in every_section():
        assert cls.__name__ in rendered, f"no table for {cls.__name__}"
        block = rendered[cls.__name__]
        for name, info in cls.model_fields.items():
            row = next((line for line in block.splitlines() if line.startswith(f"| `{name}` |")), None)
            assert row, f"{cls.__name__}.{name} is missing from the params reference"
            if not info.is_required() and not isinstance(info.default, BaseModel):
                assert f"`{hooks._value(info.default)}`" in row, f"{cls.__name__}.{name}: default not shown"


def test_the_reference_gives_types_rules_and_descriptions(hooks):
    rendered = blocks(hooks.render_params_reference())
    window = next(line for line in rendered["BatchesParams"].splitlines() if line.startswith("| `window` |"))
    assert "int, ≥ 1" in window and "`3`" in window and "last this many batches" in window
    model = next(line for line in rendered["Params"].splitlines() if line.startswith("| `model` |"))
    assert all(name in model for name in sections.registry("model choices"))
    target = next(line for line in rendered["DataParams"].splitlines() if line.startswith("| `target` |"))
    assert "`required`" in target  # no default and no comment: still a row with its type


def test_the_params_page_has_the_marker_and_the_hook_fills_it(hooks):
    page = (DOCS / "params.md").read_text(encoding="utf-8")
    assert hooks.PARAMS_MARKER in page
    built = hooks.on_page_markdown(page, page=None, config=None, files=None)
    assert hooks.PARAMS_MARKER not in built
    assert "### `train.pseudo_labeling` (PseudoLabelingParams)" in built


def test_the_command_table_lists_every_command(hooks):
    page = (DOCS / "commands.md").read_text(encoding="utf-8")
    built = hooks.on_page_markdown(page, page=None, config=None, files=None)
    assert hooks.COMMANDS_MARKER not in built
    for name, (module, _) in COMMANDS.items():
        assert f"| `reprotab {name}` | `{module}` |" in built, name


def test_readme_is_a_short_front_page_whose_links_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if not re.match(r"\w+://", link)]
    assert any(link.startswith("docs/") for link in local)
    for link in local:
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"
