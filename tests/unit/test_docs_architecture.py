"""docs/architecture.md names every module there is, and only modules there are: a new module
without a home on the page, or a module gone from the tree but still on it, fails here.

The page's table has one row per sub-package of reprotab/ (its first cell `serving/`, say) plus
a `top level` row, each naming its modules by file name in backticks (routing.py); the Stages
section names the stage shells of stages/ the same way."""

from __future__ import annotations

import re

import pytest

from tests.helpers import ROOT

PAGE = ROOT / "docs/architecture.md"
TOP_LEVEL = "top level"
NAMED = re.compile(r"`(\w+\.py)`")  # a bare module file name; paths elsewhere (`tests/...py`) are not rows' modules


def package_rows(text: str) -> dict[str, str]:
    """Package (its path relative to reprotab/ with a trailing slash, or `top level`) → its table row."""
    rows = {}
    for line in text.splitlines():
        found = re.match(r"\| (?:`([\w/]+/)`|(top level)) \|(.*)\|\s*$", line)
        if found:
            rows[found[1] or found[2]] = found[3]
    return rows


def library_modules() -> dict[str, list[str]]:
    """Package key as the page spells it → the module files in it, `__init__.py` left out."""
    modules: dict[str, list[str]] = {}
    for path in sorted((ROOT / "reprotab").rglob("*.py")):
        if path.name == "__init__.py":
            continue
        parent = path.parent.relative_to(ROOT / "reprotab").as_posix()
        modules.setdefault(TOP_LEVEL if parent == "." else f"{parent}/", []).append(path.name)
    return modules


def missing_and_stale(text: str) -> tuple[list[str], list[str]]:
    """Modules under reprotab/ the page does not name in their package's row, and modules the
    page names that are not in that package."""
    rows, modules = package_rows(text), library_modules()
    missing = [
        name if package == TOP_LEVEL else package + name
        for package, names in modules.items()
        for name in names
        if name not in NAMED.findall(rows.get(package, ""))
    ]
    stale = [
        name if package == TOP_LEVEL else package + name
        for package, row in rows.items()
        for name in NAMED.findall(row)
        if name not in modules.get(package, [])
    ]
    return missing, stale


@pytest.fixture(scope="module")
def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def test_every_library_module_is_named_in_its_package_row(page):
    missing, stale = missing_and_stale(page)
    assert not missing, f"docs/architecture.md does not name these modules of reprotab/ in their row: {missing}"
    assert not stale, f"docs/architecture.md names modules that are not in the tree: {stale}"


def test_every_sub_package_is_in_the_tree_and_has_a_row(page):
    rows = package_rows(page)
    for package in library_modules():
        if package != TOP_LEVEL:
            assert package in rows, f"docs/architecture.md has no row for reprotab/{package}"
            assert re.search(rf"^[├└]── {re.escape(package)}\s", page, re.M), f"reprotab/{package} not in the tree"


def test_every_stage_shell_is_named_in_the_stages_section(page):
    section = page.split("## Stages", 1)[1].split("\n## ", 1)[0]
    stages = sorted(p.name for p in (ROOT / "stages").glob("*.py") if p.name != "__init__.py")
    assert stages and sorted(set(NAMED.findall(section))) == stages


def test_a_module_left_off_the_page_is_found(page):
    """The check itself: drop `routing.py` from its row and it is reported, add a name that does
    not exist and that is reported too."""
    without = page.replace("`routing.py`, ", "", 1)
    assert without != page
    assert missing_and_stale(without) == (["serving/routing.py"], [])
    invented = page.replace("`routing.py`", "`routing.py`, `nowhere.py`", 1)
    assert missing_and_stale(invented) == ([], ["serving/nowhere.py"])
