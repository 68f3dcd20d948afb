"""The package as users get it: templates that need no app the project may lack, the admin's
own number filter, and the version defined once. (`nox -s wheel` tests the built wheel.)"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.template import Context, Template
from django.test import Client
from django.urls import reverse

import crosssell
from crosssell.templatetags.crosssell_admin import thousands

PACKAGE = Path(crosssell.__file__).resolve().parent
ROOT = PACKAGE.parent
# The libraries of Django's admin and staticfiles, the built-in ones, and crosssell's own: a
# template that loads anything else (humanize, a theme's tags) breaks in a project without it.
ALLOWED_LIBRARIES = {
    "static", "i18n", "l10n", "tz", "cache", "log",
    "admin_list", "admin_modify", "admin_urls",
} | {p.stem for p in (PACKAGE / "templatetags").glob("*.py") if p.stem != "__init__"}  # fmt: skip


def crosssell_templates() -> list[Path]:
    return sorted(p for p in (PACKAGE / "templates").rglob("*") if p.is_file())


def test_templates_load_only_libraries_every_project_has() -> None:
    load = re.compile(r"{%\s*load\s+([^%]+?)\s*%}")
    found: dict[str, set[str]] = {}
    for path in crosssell_templates():
        for match in load.finditer(path.read_text()):
            names = match.group(1).split()
            if "from" in names:  # {% load a b from library %}
                names = names[names.index("from") + 1 :]
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(PACKAGE)))
    assert found, "no {% load %} found: the template folder moved?"
    unknown = {
        name: sorted(paths) for name, paths in found.items() if name not in ALLOWED_LIBRARIES
    }
    assert not unknown, f"crosssell templates load libraries a project may not have: {unknown}"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1234567, "1,234,567"),
        (0, "0"),
        ("12345", "12,345"),
        (Decimal("1234.5"), "1,234.5"),
        ("-", "-"),
        (None, None),
    ],
)
def test_thousands(value: Any, shown: Any) -> None:
    assert thousands(value) == shown


def test_thousands_follows_the_active_locale(settings: Any) -> None:
    from django.utils import translation

    settings.LANGUAGES = [("en", "English"), ("de", "German")]
    with translation.override("de"):
        html = Template("{% load crosssell_admin %}{{ n|thousands }}").render(Context({"n": 12345}))
    assert html == "12.345"


@pytest.mark.django_db
def test_overview_renders_without_humanize(settings: Any) -> None:
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "django.contrib.humanize"]
    User.objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client()
    client.force_login(User.objects.get(username="boss"))
    response = client.get(reverse("admin:crosssell_overview"))
    assert response.status_code == 200
    assert b"Cross-sell overview" in response.content


def test_version_is_defined_once() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "crosssell.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", crosssell.__version__)
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {crosssell.__version__}" in changelog
    readme = (ROOT / "README.md").read_text()
    assert versions_other_than(crosssell.__version__, readme) == []
    # The wheel's file name is spelt with a glob, not a second copy of the version.
    wheel_names = re.findall(r"django_crosssell-[\w.*-]*\.whl", readme)
    assert wheel_names and all("*" in n for n in wheel_names), wheel_names


#: What the README may name the version of, besides crosssell (``django-oscar==4.2.1``,
#: ``pyenv's 3.12.1``): a version right after one of these is not crosssell's.
OTHER_PACKAGES = ("django-oscar", "pyenv's")


def versions_other_than(version: str, text: str) -> list[str]:
    """The version literals of ``text`` (``django_crosssell-X.Y.Z``, a bare ``X.Y.Z``) that are
    not ``version``, leaving out another package's version (``django-oscar==4.2.1``) and IP
    addresses."""
    other = "|".join(re.escape(p) for p in OTHER_PACKAGES)
    found = []
    for match in re.finditer(r"(?<![\d.])(\d+\.\d+\.\d+)(?!\.?\d)", text):
        before = text[max(0, match.start() - 60) : match.start()]
        if re.search(rf"(?:{other})(?:\[[^\]]*\])?(?:==| )$", before):
            continue
        if match.group(1) != version:
            word = re.search(r"[^\s\"'`(]*$", before)
            found.append((word.group() if word else "") + match.group(1))
    return found


def test_versions_other_than() -> None:
    text = (
        'pip install "dist/django_crosssell-0.1.9-py3-none-any.whl[api]" '
        '"django-oscar[sorl-thumbnail]==4.2.1"; django-oscar 4.2.1 on 127.0.0.1: crosssell 0.2.0'
    )
    assert versions_other_than("0.2.0", text) == ["dist/django_crosssell-0.1.9"]
    assert versions_other_than("0.1.9", text) == ["0.2.0"]
