"""Shared fixtures. Tests run against PostgreSQL and Redis when DATABASE_URL/REDIS_URL are set
(``make test`` sets them); the engine tests need neither."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
# The Oscar test shop is a project of its own (its settings, its pytest.ini): `make test-oscar`.
collect_ignore = ["oscarshop"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is absent (real data sets)")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared_data() -> Path:
    """The folder of the real data sets (licences forbid copying them into the project)."""
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _media_root(settings: Any, tmp_path: Path) -> None:
    """Artifacts and stored matrices go to a fresh folder per test (workers get it too)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture(autouse=True)
def _isolated_cache_and_eager_celery(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with an empty cache; tasks run in-process unless the test starts a real
    worker (``celery_worker`` fixture), which switches eager mode off for its duration."""
    from django.core.cache import cache

    from crosssell.services import cache as cs_cache
    from crosssell.services import incremental, tracking
    from shop.celery import app

    with contextlib.suppress(Exception):  # a test may have stopped the cache server on purpose
        cache.clear()
    cs_cache.forget_local()
    incremental.outage.reset()  # an earlier test's broker outage, as this process saw it
    tracking.drop_held()  # an earlier test's impressions, held in this process
    eager = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = eager


class Worker:
    """A real ``celery worker`` process on the test database and the test Redis."""

    def __init__(self, name: str, concurrency: int, env: dict[str, str]) -> None:
        self.name = f"{name}@{socket.gethostname()}"
        cmd = [
            sys.executable, "-m", "celery", "-A", "shop", "worker", "-n", self.name,
            "-c", str(concurrency), "-P", "prefork", "-l", "warning",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (kept open for the worker's life)
            prefix="celery-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 60.0) -> None:
        from shop.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {Path(self.log.name).read_text()[-3000:]}")
            if app.control.ping(destination=[self.name], timeout=0.5):
                return
        raise RuntimeError(f"worker not ready: {Path(self.log.name).read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def celery_workers(transactional_db: None) -> Iterator[Callable[..., Worker]]:
    """Start real Celery workers: ``start(name, concurrency=1, **env)``; stopped at the end.

    The workers use the test database and Redis (``REDIS_URL``); the queue is purged first.
    """
    from django.db import connection

    from shop.celery import app

    redis_url = os.environ.get("REDIS_URL")
    if not redis_url or connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL and Redis (DATABASE_URL and REDIS_URL; `make test` sets them)"
        )
    db = connection.settings_dict
    db_url = (
        f"postgres://{db['USER'] or 'postgres'}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}"
        f":{db['PORT'] or 5432}/{db['NAME']}"
    )
    app.conf.task_always_eager = False
    app.control.purge()
    started: list[Worker] = []

    def start(name: str = "w1", concurrency: int = 1, **extra: str) -> Worker:
        from django.conf import settings

        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            **extra,
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env["DJANGO_SETTINGS_MODULE"] = os.environ.get("DJANGO_SETTINGS_MODULE", "shop.settings")
        worker = Worker(name, concurrency, env)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()
    app.control.purge()


@pytest.fixture
def unreachable_port() -> int:
    """A local TCP port nothing listens on (the kernel just handed it out and it was closed);
    not RabbitMQ's 5672 nor Redis's 6379, which are up on a development machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    with pytest.raises(OSError):  # really refused: nothing took it in the meantime
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    return port


@pytest.fixture
def celery_broker() -> Callable[[str], contextlib.AbstractContextManager[None]]:
    """``with celery_broker(url):`` this process sends its tasks to ``url`` (eager mode off),
    then back to the settings' broker. (Celery reads ``CELERY_BROKER_URL`` once, so an
    ``override_settings`` would not reach it: this is that override, on the app's config.)"""
    from kombu import pools

    from shop.celery import app

    def reset() -> None:
        # kombu keeps its pools in a global registry by URL, and the app caches its own.
        pools.reset()
        app._pool = None
        amqp = app.__dict__.get("amqp")
        if amqp is not None:
            amqp._producer_pool = None

    @contextlib.contextmanager
    def at(url: str) -> Iterator[None]:
        saved = app.conf.broker_url, app.conf.task_always_eager
        app.conf.broker_url, app.conf.task_always_eager = url, False
        reset()
        try:
            yield
        finally:
            app.conf.broker_url, app.conf.task_always_eager = saved
            reset()

    return at
