"""The Celery set-up a project needs (README, "Celery"): its own ``celery.py``, or none and
crosssell's app (``crosssell.celery_app``); and the checks that say when crosssell's tasks would
go to a broker the project never configured (crosssell.W050-W052)."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
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
# Runs in the new project: its check ids, the Celery app crosssell's tasks are sent with (in
# this thread and in another one), then three orders' update scheduling (no database needed),
# counting every TCP connection attempt and every crosssell log record.
PROBE = """
import json, logging, socket, sys, threading, django
attempts = []
real = socket.socket.connect
socket.socket.connect = lambda s, a: (attempts.append(a), real(s, a))[1]
django.setup()
from django.core.checks import run_checks
from crosssell.tasks import process_pending
ids = sorted({m.id for m in run_checks() if (m.id or "").startswith("crosssell.W05")})
def name_of_app():
    own = sys.modules.get("crosssell.celery_app")
    app = process_pending.app
    return "crosssell.celery_app" if own is not None and app is own.app else app.main
apps = [name_of_app()]
thread = threading.Thread(target=lambda: apps.append(name_of_app()))
thread.start(); thread.join()
records = []
class Keep(logging.Handler):
    def emit(self, r): records.append([r.levelname, r.getMessage(), bool(r.exc_info)])
log = logging.getLogger("crosssell")
log.addHandler(Keep()); log.setLevel(logging.INFO)
queued = []
if {SCHEDULE}:
    from crosssell.services import incremental
    queued = [incremental.schedule([1, 2]) for _ in range(3)]
print(json.dumps({"ids": ids, "apps": apps, "queued": queued, "records": records,
                  "connects": len(attempts)}))
"""


def readme_block(marker: str) -> str:
    """The README's Python code block that contains ``marker``, dedented."""
    for block in re.findall(r"```python\n(.*?)```", README, flags=re.S):
        if marker in block:
            return textwrap.dedent(block)
    raise AssertionError(f"no python block with {marker!r} in README.md")


def write_project(tmp_path: Path, with_celery_py: bool, extra_settings: str = "") -> dict[str, str]:
    """A project that is not the sample shop, set up as the README says (with or without its
    celery.py), with ``extra_settings`` at the end of its settings; returns its environment."""
    package = tmp_path / "yourproject"
    package.mkdir()
    settings = PROJECT_SETTINGS + readme_block("CELERY_BEAT_SCHEDULE") + extra_settings
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
    return env


def run_in(tmp_path: Path, env: dict[str, str], code: str, timeout: float = 120) -> Any:
    """Run ``code`` in the project; returns the JSON its last output line holds."""
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def new_project(
    tmp_path: Path, with_celery_py: bool, extra_settings: str = "", schedule: bool = False
) -> dict[str, Any]:
    """A project set up as the README says (:func:`write_project`); runs :data:`PROBE` there
    (``schedule``: three orders' scheduling too)."""
    env = write_project(tmp_path, with_celery_py, extra_settings)
    result: dict[str, Any] = run_in(tmp_path, env, PROBE.replace("{SCHEDULE}", str(schedule)))
    return result


#: The README's settings without their broker (a settings module may ``del`` a name).
NO_BROKER = "\ndel CELERY_BROKER_URL\n"


def test_a_project_without_a_celery_app_sends_with_crosssells_app(tmp_path: Path) -> None:
    """No celery.py: crosssell's app, which reads the README's settings, is the one crosssell's
    tasks are sent with, from every thread, and the checks are satisfied."""
    result = new_project(tmp_path, with_celery_py=False)
    assert result["apps"] == ["crosssell.celery_app", "crosssell.celery_app"]
    assert result["ids"] == []


@pytest.mark.parametrize(
    ("with_celery_py", "expected"),
    [(False, "crosssell.W050"), (True, "crosssell.W051")],
    ids=["crosssells-app", "projects-app"],
)
def test_an_app_without_a_broker_is_warned_and_sends_nothing(
    tmp_path: Path, with_celery_py: bool, expected: str
) -> None:
    """Without CELERY_BROKER_URL Celery would publish to amqp://guest@localhost// (a RabbitMQ
    runs there on a development machine, and no worker of the project would ever read it)."""
    result = new_project(tmp_path, with_celery_py, NO_BROKER, schedule=True)
    assert result["ids"] == [expected]
    assert result["queued"] == [False, False, False]
    assert result["connects"] == 0
    warnings = [r for r in result["records"] if r[0] == "WARNING"]
    assert len(warnings) == 1 and "no broker configured" in warnings[0][1], result["records"]
    assert not any(r[2] for r in result["records"])  # no traceback


def test_the_readme_celery_py_and_settings_satisfy_the_checks(tmp_path: Path) -> None:
    result = new_project(tmp_path, with_celery_py=True)
    assert result["apps"] == ["yourproject", "yourproject"]  # the project's own app stays
    assert result["ids"] == []


# Runs in the project while its worker runs: an order recorded, committed, and its products'
# pending update applied by the worker (the rows disappear) within the timeout.
ORDER = """
import json, time, django
django.setup()
from django.db import transaction
from crosssell.models import PendingUpdate, Product
from crosssell.services.purchases import Line, record_order
a = Product.objects.create(sku="a", name="A", price=10, stock=5)
b = Product.objects.create(sku="b", name="B", price=20, stock=5)
with transaction.atomic():
    record_order("ORDER-1", [Line(a.pk, 1, 10), Line(b.pk, 1, 20)])
    pending_at_commit = PendingUpdate.objects.count()
deadline = time.monotonic() + 60
while PendingUpdate.objects.exists() and time.monotonic() < deadline:
    time.sleep(0.2)
print(json.dumps({"pending_at_commit": pending_at_commit,
                  "pending_after": PendingUpdate.objects.count()}))
"""


@contextlib.contextmanager
def crosssell_worker(tmp_path: Path, env: dict[str, str], name: str, broker: str) -> Iterator[Path]:
    """``celery -A crosssell.celery_app worker`` in the project (README, "Celery"), until the
    block ends; yields its log file. Ready once it answers a ping."""
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "crosssell.celery_app", "worker", "-n", name,
             "-P", "solo", "-l", "info", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    control = Celery("ping", broker=broker, set_as_current=False).control
    try:
        deadline = time.monotonic() + 90
        while not control.ping(destination=[name], timeout=0.5):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
        yield log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.mark.celery_worker
def test_a_project_without_a_celery_app_has_its_tasks_run_by_crosssells_worker(
    tmp_path: Path,
) -> None:
    """No celery.py, no Python of the project's own: a checkout's update is sent with
    crosssell's app to the broker of the settings, and a real worker started as
    ``celery -A crosssell.celery_app worker`` (with DJANGO_SETTINGS_MODULE, as the README says)
    applies it."""
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("needs Redis (REDIS_URL; `make test` sets it)")
    queue = f"crosssell-fresh-{uuid.uuid4().hex[:8]}"  # no other worker on this Redis takes it
    env = write_project(
        tmp_path,
        with_celery_py=False,
        extra_settings=(
            f"\nDATABASES['default']['NAME'] = {str(tmp_path / 'db.sqlite3')!r}\n"
            f"CELERY_BROKER_URL = {redis_url!r}\n"
            f"CELERY_TASK_DEFAULT_QUEUE = {queue!r}\n"
            "CROSSSELL_INCREMENTAL_DELAY = 0.2\n"
        ),
    )
    migrate = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v", "0"], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    name = f"{queue}@{socket.gethostname()}"
    with crosssell_worker(tmp_path, env, name, redis_url) as log:
        result = run_in(tmp_path, env, ORDER)
        worker_log = log.read_text()
    assert result == {"pending_at_commit": 2, "pending_after": 0}, worker_log[-3000:]
    assert "crosssell.process_pending" in worker_log and "succeeded" in worker_log, worker_log


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
        (Celery("crosssell", set_as_current=False), ["crosssell.W050"]),
        (Celery("proj", set_as_current=False), ["crosssell.W051"]),
        (
            Celery("proj", broker="redis://127.0.0.1:6379/0", set_as_current=False),
            ["crosssell.W052"],
        ),
        (Celery("proj", broker="amqp://127.0.0.1//", set_as_current=False), []),
    ],
    ids=[
        "fallback-app",
        "crosssells-app-without-broker",
        "no-broker",
        "redis-without-connect-timeout",
        "amqp",
    ],
)
def test_celery_warnings(app: Celery, expected: list[str], monkeypatch: Any) -> None:
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    assert [m.id for m in celery_warnings(app)] == expected
    if app.main != "default":
        # What the hints say to do silences them: a bounded broker, or eager mode.
        app.conf.broker_url = "redis://127.0.0.1:6379/0"
        app.conf.broker_transport_options = {"socket_connect_timeout": 1.0}
        assert celery_warnings(app) == []
        app.conf.broker_url, app.conf.task_always_eager = None, True
        assert celery_warnings(app) == []
