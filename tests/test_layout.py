"""The layout of the tests: no test module imports another test module.

Test modules share helpers through fixtures (``conftest.py``), ``crosssell.testing`` (shipped,
generic helpers) or a helper module of the tests that is not a test module
(``tests/widgets.py``, ``tests/crosssell/strategies.py``, ``tests/crosssell/widget_shop.py``...).
Importing a test module runs its collection-time code twice and couples two test files, so a
helper moved or renamed in one silently breaks the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def is_test_module(name: str) -> bool:
    """Whether the dotted module ``name`` is a test module (``test_*`` or ``*_test``)."""
    last = name.rsplit(".", 1)[-1]
    return last.startswith("test_") or last.endswith("_test")


def module_name(path: Path) -> str:
    """The dotted name of ``path`` relative to the project root (``tests.crosssell.test_x``)."""
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imported_test_modules(source: str, name: str) -> list[str]:
    """The test modules that the module ``name`` (whose code is ``source``) imports."""
    package = name.rsplit(".", 1)[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _any_part_is_a_test(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*anchor, *([base] if base else [])])
            if _any_part_is_a_test(base):
                found.append(base)
            else:  # ``from tests.crosssell import test_x``
                found += [f"{base}.{a.name}" for a in node.names if is_test_module(a.name)]
    return found


def _any_part_is_a_test(dotted: str) -> bool:
    parts = dotted.split(".")
    return any(is_test_module(".".join(parts[: i + 1])) for i in range(len(parts)))


TEST_FILES = sorted(p for p in TESTS.rglob("test_*.py") if ".nox" not in p.parts)


def test_the_files_are_found() -> None:
    names = {module_name(p) for p in TEST_FILES}
    assert "tests.test_layout" in names
    assert {"tests.crosssell.test_templatetags", "tests.engine.test_registry"} <= names


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: str(p.relative_to(TESTS)))
def test_no_test_module_imports_another(path: Path) -> None:
    name = module_name(path)
    imported = imported_test_modules(path.read_text(encoding="utf-8"), name)
    assert not imported, (
        f"{name} imports the test module(s) {imported}: move the shared helpers to a "
        "conftest.py fixture, crosssell.testing (generic helpers only: it ships in the wheel) "
        "or a helper module of the tests that is not a test module"
    )


@pytest.mark.parametrize(
    "source",
    [
        "from tests.crosssell.test_templatetags import FBT, Shop",
        "import tests.crosssell.test_templatetags",
        "import tests.crosssell.test_templatetags as tt",
        "from tests.crosssell import test_templatetags",
        "from .test_templatetags import Shop",
        "from . import test_templatetags",
        "from ..crosssell.test_templatetags import Shop",
        "from ..crosssell import test_templatetags",
        "def f():\n    from tests.crosssell.test_build_fast_paths import Fixed\n",
    ],
)
def test_the_check_finds_every_form_of_import(source: str) -> None:
    assert imported_test_modules(source, "tests.crosssell.test_widget_cache")


@pytest.mark.parametrize(
    "source",
    [
        "from tests.crosssell.strategies import COCOUNT",
        "from tests.widgets import widgets",
        "from tests.engine.conftest import random_interactions",
        "from crosssell.testing import make_product",
        "from . import strategies",
        "import pytest",
        "from django.test import testcases",
    ],
)
def test_the_check_allows_helper_modules(source: str) -> None:
    assert imported_test_modules(source, "tests.crosssell.test_widget_cache") == []
