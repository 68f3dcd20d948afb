"""The README's "Installing into django-oscar" holds every line a user adds, exactly as the test
shop (tests/oscarshop) has them, and nothing else (issue 15). Files only: no Oscar import.

Each code block of the section that a user puts into a file starts with a comment naming it
(``# settings.py, at the top``, ``# urls.py``, ``{# templates/oscar/... #}``), relative to the
shop's package. The shop marks crosssell's lines: a line ending in ``# crosssell``, or the lines
after a ``# crosssell`` comment line up to the next blank line or the end of the enclosing
bracket. The template overrides are crosssell's whole.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SHOP = ROOT / "tests" / "oscarshop" / "oscarshop"
HEADER = re.compile(r"^(?:#|\{#)\s*(?P<file>[\w./-]+\.(?:py|html))\b")
MARK = "# crosssell"


def section() -> str:
    text = README.read_text()
    start = text.index("## Installing into django-oscar")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def readme_files() -> dict[str, list[str]]:
    """The section's file blocks: the file each names, and its lines (blocks of one file
    joined), without the naming line."""
    files: dict[str, list[str]] = {}
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", section(), flags=re.S | re.M):
        first, *rest = block.splitlines()
        match = HEADER.match(first)
        if match:
            files.setdefault(match["file"], []).extend(rest)
    return files


def is_placeholder(line: str) -> bool:
    """A line that stands for the shop's own (``# ... Django's and Oscar's apps``)."""
    return line.strip().startswith(("# ...", "{# ..."))


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def crosssell_lines(path: Path) -> list[str]:
    """The lines of one of the shop's files that are crosssell's (see the module docstring)."""
    lines = path.read_text().splitlines()
    if path.suffix == ".html":
        return [line for line in lines if line.strip()]
    marked: list[str] = []
    block_indent: int | None = None
    for line in lines:
        if block_indent is not None:
            if not line.strip() or indent(line) < block_indent:
                block_indent = None
            else:
                marked.append(line)
                continue
        if line.strip() == MARK:
            block_indent = indent(line)
            marked.append(line)
        elif line.rstrip().endswith("  " + MARK):
            marked.append(line)
    return marked


def shop_files() -> dict[str, Path]:
    """The shop's files crosssell adds lines to: settings, URLs and every template override."""
    found = {"settings.py": SHOP / "settings.py", "urls.py": SHOP / "urls.py"}
    for template in sorted((SHOP / "templates").rglob("*.html")):
        found[str(template.relative_to(SHOP))] = template
    return found


def test_the_readme_names_every_file_the_shop_adds_crosssell_lines_to() -> None:
    assert set(readme_files()) == set(shop_files())


def test_every_readme_line_is_in_the_shop_as_written() -> None:
    files = shop_files()
    missing = [
        f"{name}: {line!r}"
        for name, lines in readme_files().items()
        for line in lines
        if line.strip()
        and not is_placeholder(line)
        and line not in files[name].read_text().splitlines()
    ]
    assert missing == []


def test_every_crosssell_line_of_the_shop_is_in_the_readme() -> None:
    readme = readme_files()
    missing = [
        f"{name}: {line!r}"
        for name, path in shop_files().items()
        for line in crosssell_lines(path)
        if line not in readme.get(name, [])
    ]
    assert missing == []


def test_the_marks_cover_what_crosssell_needs() -> None:
    """The comparison above sees the lines the audit of issue 15 found missing from the README
    (they were in the shop, unmarked)."""
    marked = [line.strip() for line in crosssell_lines(SHOP / "settings.py")]
    for start in (
        "from celery.schedules import crontab",
        "REDIS_URL = ",
        "CACHES = {",
        "CELERY_BROKER_URL = ",
        "CELERY_RESULT_BACKEND = ",
        "CELERY_BROKER_TRANSPORT_OPTIONS = ",
        "CELERY_BEAT_SCHEDULE = {",
        '"crosssell",',
        '"crosssell.middleware.TrackingMiddleware",',
        "CROSSSELL_PRODUCT_MODEL = ",
    ):
        assert any(line.startswith(start) for line in marked), start
    urls = [line.strip() for line in crosssell_lines(SHOP / "urls.py")]
    assert 'path("crosssell/oscar/", include("crosssell.contrib.oscar.urls")),' in urls


def test_the_readme_settings_run_on_their_own() -> None:
    """Every name the README's settings use is defined by its lines (``REDIS_URL`` was used and
    never defined), the placeholders standing for Django's and Oscar's own lines."""
    lines = readme_files()["settings.py"]
    imports = [line for line in lines if line.startswith(("import ", "from "))]  # at the top
    namespace: dict[str, Any] = {}
    exec("\n".join(imports + [line for line in lines if line not in imports]), namespace)
    assert namespace["CELERY_BROKER_URL"] == namespace["REDIS_URL"]
    assert namespace["CACHES"]["default"]["LOCATION"] == namespace["REDIS_URL"]
    assert "crosssell" in namespace["INSTALLED_APPS"]
    assert set(namespace["CELERY_BEAT_SCHEDULE"]) == {
        "crosssell-nightly-rebuild",
        "crosssell-pending-updates",
        "crosssell-flush-events",
    }


def test_the_shop_has_no_celery_py_and_the_readme_asks_for_none() -> None:
    assert not (SHOP / "celery.py").exists()
    text = section()
    assert "celery -A crosssell.celery_app worker" in text
    assert "celery.py" not in readme_files()
