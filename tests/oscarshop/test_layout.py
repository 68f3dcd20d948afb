"""The Oscar shop gets crosssell with settings, URL includes and template lines and no Python of
its own (issue 15): its package is Oscar's project layout, and crosssell's Celery app runs the
tasks (``celery -A crosssell.celery_app worker``)."""

from __future__ import annotations

import ast
from pathlib import Path

import oscarshop

PACKAGE = Path(oscarshop.__file__).resolve().parent


def test_the_shop_package_holds_only_settings_and_urls() -> None:
    found = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))
    assert found == ["__init__.py", "settings.py", "urls.py"]


def test_the_package_init_is_a_docstring_only() -> None:
    body = ast.parse((PACKAGE / "__init__.py").read_text()).body
    assert len(body) == 1, ast.dump(ast.Module(body=body, type_ignores=[]))
    node = body[0]
    assert isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    assert isinstance(node.value.value, str)


def test_crosssells_celery_app_sends_crosssells_tasks() -> None:
    """The shop made no Celery app, so crosssell's is the current and default one (the worker
    fixture runs ``-A crosssell.celery_app``), with the shop's CELERY_* settings."""
    from celery import _state, current_app
    from django.conf import settings

    from crosssell.celery_app import app
    from crosssell.tasks import process_pending

    assert current_app._get_current_object() is app
    assert _state.default_app is app  # every thread's, not only this one's
    assert process_pending.app is app
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
    assert app.conf.beat_schedule == settings.CELERY_BEAT_SCHEDULE
