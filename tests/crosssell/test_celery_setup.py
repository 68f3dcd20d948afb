"""The Celery set-up a project needs (README, "Celery") and the checks that say when crosssell's
tasks would go to a broker the project never configured (crosssell.W050-W052)."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.schedules import crontab
from django.core.checks import run_checks

from crosssell.checks import celery_warnings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PROJECT_SETTINGS = """
SECRET_KEY = "test"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "crosssell"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
"""
# Runs in the new project: its check ids, then three orders' update scheduling (no database
# needed), counting every TCP connection attempt and every crosssell log record.
PROBE = """
import json, logging, socket, django
attempts = []
real = socket.socket.connect
socket.socket.connect = lambda s, a: (attempts.append(a), real(s, a))[1]
django.setup()
from django.core.checks import run_checks
ids = sorted({m.id for m in run_checks() if (m.id or "").startswith("crosssell.W05")})
records = []
class Keep(logging.Handler):
    def emit(self, r): records.append([r.levelname, r.getMessage(), bool(r.exc_info)])
log = logging.getLogger("crosssell")
log.addHandler(Keep()); log.setLevel(logging.INFO)
queued = []
if {SCHEDULE}:
    from crosssell.services import incremental
    queued = [incremental.schedule([1, 2]) for _ in range(3)]
print(json.dumps({"ids": ids, "queued": queued, "records": records, "connects": len(attempts)}))
"""


def readme_block(marker: str) -> str:
    """The README's Python code block that contains ``marker``, dedented."""
    for block in re.findall(r"```python\n(.*?)```", README, flags=re.S):
        if marker in block:
            return textwrap.dedent(block)
    raise AssertionError(f"no python block with {marker!r} in README.md")


def new_project(tmp_path: Path, with_celery_py: bool) -> dict[str, Any]:
    """A project that is not the sample shop, set up as the README says (with or without its
    celery.py); runs :data:`PROBE` there."""
    package = tmp_path / "yourproject"
    package.mkdir()
    settings = PROJECT_SETTINGS + readme_block("CELERY_BEAT_SCHEDULE")
    (package / "settings.py").write_text(settings)
    (package / "__init__.py").write_text(
        readme_block("from .celery import app") if with_celery_py else ""
    )
    if with_celery_py:
        (package / "celery.py").write_text(readme_block("config_from_object"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "yourproject.settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    for name in ("CELERY_BROKER_URL", "DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    code = PROBE.replace("{SCHEDULE}", str(not with_celery_py))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_project_without_a_celery_app_is_warned_and_sends_nothing(tmp_path: Path) -> None:
    """Celery's fallback app would publish to amqp://guest@localhost// (a RabbitMQ runs there
    on a development machine, and no worker of the project would ever read it)."""
    result = new_project(tmp_path, with_celery_py=False)
    assert result["ids"] == ["crosssell.W050"]
    assert result["queued"] == [False, False, False]
    assert result["connects"] == 0
    warnings = [r for r in result["records"] if r[0] == "WARNING"]
    assert len(warnings) == 1 and "no Celery app" in warnings[0][1], result["records"]
    assert not any(r[2] for r in result["records"])  # no traceback


def test_the_readme_celery_py_and_settings_satisfy_the_checks(tmp_path: Path) -> None:
    assert new_project(tmp_path, with_celery_py=True)["ids"] == []


def test_the_readme_schedules_crosssell_periodic_tasks_as_the_sample_shop_does() -> None:
    namespace: dict[str, Any] = {}
    exec(readme_block("CELERY_BEAT_SCHEDULE"), namespace)  # our own README
    schedule = namespace["CELERY_BEAT_SCHEDULE"]
    assert {e["task"] for e in schedule.values()} == {
        "crosssell.rebuild",
        "crosssell.process_pending",
        "crosssell.flush_events",
    }
    shop = importlib.import_module("shop.settings")  # the sample shop's own, whatever runs
    for name, entry in schedule.items():
        assert shop.CELERY_BEAT_SCHEDULE[name] == entry
    assert isinstance(schedule["crosssell-nightly-rebuild"]["schedule"], crontab)


def test_the_sample_shop_raises_no_celery_warning() -> None:
    assert not [m.id for m in run_checks() if (m.id or "").startswith("crosssell.W05")]


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (Celery("default", fixups=[], set_as_current=False), ["crosssell.W050"]),
        (Celery("proj", set_as_current=False), ["crosssell.W051"]),
        (
            Celery("proj", broker="redis://127.0.0.1:6379/0", set_as_current=False),
            ["crosssell.W052"],
        ),
        (Celery("proj", broker="amqp://127.0.0.1//", set_as_current=False), []),
    ],
    ids=["fallback-app", "no-broker", "redis-without-connect-timeout", "amqp"],
)
def test_celery_warnings(app: Celery, expected: list[str], monkeypatch: Any) -> None:
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    assert [m.id for m in celery_warnings(app)] == expected
    if expected in (["crosssell.W051"], ["crosssell.W052"]):
        # What the hints say to do silences them: a bounded broker, or eager mode.
        app.conf.broker_url = "redis://127.0.0.1:6379/0"
        app.conf.broker_transport_options = {"socket_connect_timeout": 1.0}
        assert celery_warnings(app) == []
        app.conf.broker_url, app.conf.task_always_eager = None, True
        assert celery_warnings(app) == []
