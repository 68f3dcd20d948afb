"""nox sessions: the package as users get it, and the app under other Django versions.

`make test` runs the default sessions after the main pytest runs; `nox -s NAME` runs one alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import nox

ROOT = Path(__file__).resolve().parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/crosssell"
# The sample shop's and the tests' packages besides the app's own, and the peers some engine
# tests compare with (constraints-django61.txt pins them, and every other package of that
# environment, for Python 3.12). No TensorFlow: those tests skip.
DJANGO61_TEST_DEPS = [
    "dj-database-url", "whitenoise", "drf-spectacular-sidecar",
    "pytest", "pytest-django", "factory-boy", "hypothesis", "schemathesis",
    "matplotlib", "pandas", "mlxtend",
]  # fmt: skip
# The Oscar test shop's packages besides the wheel (constraints-oscar.txt pins them all).
OSCAR_DEPS = [
    "django-oscar[sorl-thumbnail]==4.2.1", "dj-database-url", "pytest", "pytest-django",
    "playwright",
]  # fmt: skip
nox.options.default_venv_backend = "venv"
nox.options.sessions = ["wheel", "django61", "oscar"]
nox.options.error_on_missing_interpreters = True

# Django 6.x needs Python >= 3.12. The machine image has one under pyenv without a `python3.12`
# on PATH, so the path is named; CROSSSELL_PYTHON312 overrides it elsewhere.
_PYENV_312 = "/root/.pyenv/versions/3.12.1/bin/python"
PYTHON_312 = os.environ.get("CROSSSELL_PYTHON312") or (
    _PYENV_312 if os.path.exists(_PYENV_312) else "3.12"
)


def database_url(suffix: str) -> str:
    """DATABASE_URL (the test suite's) with the database name suffixed: a session's own."""
    url = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    return urlunsplit(url._replace(path=f"{url.path.rstrip('/')}_{suffix}"))


@nox.session
def wheel(session: nox.Session) -> None:
    """Build the sdist and wheel, install the wheel into a clean venv, run a minimal shop on it."""
    dist = Path(session.create_tmp()) / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("-c", str(ROOT / "constraints.txt"), "build")
    # The wheel is built from the sdist, so a file the sdist lacks is missing from both.
    session.run("python", "-m", "build", "--outdir", str(dist), str(ROOT), silent=True)
    session.run("python", str(ROOT / "tests/installed/check_dist.py"), str(ROOT), str(dist))
    (wheel_file,) = dist.glob("*.whl")
    # Not editable: crosssell is the copy in this venv's site-packages.
    session.install("-c", str(ROOT / "constraints.txt"), f"{wheel_file}[api,postgres]")
    # The minimal shop runs from a folder outside the checkout, so nothing there is importable.
    project = Path(tempfile.mkdtemp(prefix="crosssell-installed-"))
    try:
        shutil.copytree(
            ROOT / "tests/installed", project, dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "check_dist.py"),
        )  # fmt: skip
        env = {
            "INSTALLED_DATABASE_URL": database_url("installed"),
            "DJANGO_SETTINGS_MODULE": "minimalshop.settings",
            "CROSSSELL_CHECKOUT": str(ROOT),
            "PYTHONPATH": "",
        }
        with session.chdir(project):
            session.run("python", "smoke.py", env=env)
    finally:
        shutil.rmtree(project, ignore_errors=True)


@nox.session(python=PYTHON_312)
def django61(session: nox.Session) -> None:
    """The app and engine tests under Django 6.1 on Python 3.12 (no browser, no TensorFlow)."""
    session.install(
        "-c", str(ROOT / "constraints-django61.txt"), "-e", f"{ROOT}[api,postgres]",
        *DJANGO61_TEST_DEPS,
    )  # fmt: skip
    session.run(
        "python", "-c",
        "import django; assert django.VERSION[:2] == (6, 1), django.get_version()",
    )  # fmt: skip
    env = {"DATABASE_URL": database_url("django61"), "DJANGO_SETTINGS_MODULE": "shop.settings"}
    with session.chdir(ROOT):
        session.run(
            "python", "-m", "pytest", "-p", "no:cacheprovider", "-q",
            "tests/engine", "tests/crosssell", "-m", "not e2e and not deep",
            *session.posargs, env=env,
        )  # fmt: skip


@nox.session
def oscar(session: nox.Session) -> None:
    """crosssell in a django-oscar 4.2 shop (tests/oscarshop), installed from the wheel."""
    dist = Path(session.create_tmp()) / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    constraints = str(ROOT / "constraints-oscar.txt")
    session.install("-c", constraints, "build")
    session.run("python", "-m", "build", "--outdir", str(dist), str(ROOT), silent=True)
    (wheel_file,) = dist.glob("*.whl")
    # Not editable: crosssell is the copy in this venv's site-packages (reinstalled, so a reused
    # venv, `nox -r`, runs this checkout's wheel and not the one installed before).
    session.install("-c", constraints, f"{wheel_file}[api,postgres]", *OSCAR_DEPS)
    session.install("--no-deps", "--force-reinstall", str(wheel_file))
    # The shop runs from a copy outside the checkout, so the checkout's crosssell is not on the
    # path; its settings, pytest.ini and conftest are its own.
    project = Path(tempfile.mkdtemp(prefix="crosssell-oscar-"))
    try:
        shutil.copytree(
            ROOT / "tests/oscarshop", project, dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )  # fmt: skip
        env = {
            "OSCARSHOP_DATABASE_URL": database_url("oscar"),
            "DJANGO_SETTINGS_MODULE": "oscarshop.settings",
            "PYTHONPATH": "",
            # The browser test fails, rather than skips, when Debian's chromium is missing.
            "CROSSSELL_REQUIRE_BROWSER": "1",
        }
        with session.chdir(project):
            session.run(
                "python", "-c",
                "import crosssell, oscar; assert 'site-packages' in crosssell.__file__; "
                "assert oscar.VERSION[:3] == (4, 2, 1), oscar.VERSION",
                env=env,
            )  # fmt: skip
            session.run("python", "-m", "pytest", "-q", *session.posargs, env=env)
    finally:
        shutil.rmtree(project, ignore_errors=True)
