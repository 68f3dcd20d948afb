"""Run the minimal shop against crosssell installed from its wheel (the `wheel` nox session).

Run from a copy of this folder outside the checkout, with the venv that has the wheel installed:
``python smoke.py``. It checks that crosssell comes from the venv's site-packages, then runs
``check``, ``migrate`` and ``makemigrations --check`` on a fresh PostgreSQL database, loads every
crosssell template, builds recommendations from a few orders, and requests every crosssell admin
page (and the README's API and docs routes) as a superuser: each must answer 200, including the
delete confirmation page of every object whose admin allows deleting it. A custom admin view is
either a page (200) or one of ``POST_ONLY`` (405 to a GET, with ``Allow: POST``); a custom view
in neither list fails, so a new one must be classified here. Exits non-zero naming every failure.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "minimalshop.settings")
sys.path.insert(0, str(Path(__file__).resolve().parent))
STARTED = time.monotonic()

#: crosssell's custom admin views that only take POST (the buttons and forms that change data):
#: a GET answers 405 with ``Allow: POST``.
POST_ONLY = {
    "crosssell_build_rebuild",
    "crosssell_build_publish",
    "crosssell_experiment_end",
    "crosssell_experiment_start",
    "crosssell_recommendation_curate",
}
#: crosssell's custom admin views that are pages: a GET answers 200.
PAGES = {
    "crosssell_overview",
    "crosssell_build_progress",
    "crosssell_recommendation_pin_rule",
}


def step(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.1f}s] {message}", flush=True)


def assert_installed_package() -> Path:
    """crosssell must be the wheel's copy, not the checkout's."""
    import crosssell

    package = Path(crosssell.__file__).resolve().parent
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    checkout = os.environ.get("CROSSSELL_CHECKOUT")
    assert package.parent == site, f"crosssell imported from {package}, not from {site}"
    # (nox keeps its venvs under the checkout's .nox/, so compare with the checkout's package.)
    if checkout:
        source = (Path(checkout) / "crosssell").resolve()
        assert package != source and str(Path(checkout).resolve()) not in sys.path, package
    step(f"crosssell {crosssell.__version__} from {package}")
    return package


def fresh_database() -> None:
    """Drop and create the minimal shop's own database (never the test suite's)."""
    import psycopg

    url = urlsplit(os.environ["INSTALLED_DATABASE_URL"])
    name = url.path.lstrip("/")
    maintenance = urlunsplit(url._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    step(f"fresh database {name}")


def load_templates(package: Path) -> int:
    from django.template.loader import get_template

    root = package / "templates"
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    for name in names:
        origin = Path(get_template(name).origin.name).resolve()  # type: ignore[attr-defined]
        assert origin.is_relative_to(package), f"{name} loaded from {origin}"
    return len(names)


def make_orders() -> Any:
    """A few products bought together by enough customers to publish pairs, then a build."""
    from catalog.models import Category, Product
    from django.core.management import call_command

    from crosssell.models import Exclusion, Experiment, Variant
    from crosssell.testing import buy

    tools, garden = Category.objects.create(name="Tools"), Category.objects.create(name="Garden")
    products = [
        Product.objects.create(
            sku=f"SKU{i}", title=f"Product {i}", category=tools if i % 2 else garden, price=i + 1
        )
        for i in range(8)
    ]
    for n in range(12):
        first = products[n % 4]
        buy(f"order-{n}", f"customer-{n}", first, products[(n % 4) + 4], products[(n + 1) % 8])
    call_command("crosssell_rebuild", verbosity=0)
    call_command("crosssell_rebuild", verbosity=0)  # the first build is no longer live: deletable
    # One object of each other admin, so their change pages are requested too, and a merchant's
    # decision (a recommendation row without a build, which the admin lets one delete).
    from crosssell.services.curation import pin

    pin(products[0].pk, products[5].pk)
    Exclusion.objects.create(source_product=products[7], target_category="Garden")
    experiment = Experiment.objects.create(name="Widget or not", placement="product")
    Variant.objects.create(experiment=experiment, name="blend", weight=1)
    Variant.objects.create(experiment=experiment, name="holdout", holdout=True, weight=1)
    return products


def admin_pages() -> tuple[list[tuple[str, str, int]], list[str]]:
    """(label, url, expected status) for every page of crosssell's admin and the product's,
    and the custom views that cannot be requested as they should."""
    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.test import RequestFactory
    from django.urls import URLPattern, reverse

    from crosssell.models import get_product_model

    request = RequestFactory().get("/admin/")
    request.user = User.objects.get(username="boss")
    product_model = get_product_model()
    pages = [("admin index", reverse("admin:index"), 200)]
    pages.append(("app index", reverse("admin:app_list", args=["crosssell"]), 200))
    problems: list[str] = []
    seen: set[str] = set()
    standard = ("_changelist", "_add", "_change", "_delete", "_history", "_autocomplete")
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "crosssell" and model is not product_model:
            continue
        opts = model._meta
        prefix = f"admin:{opts.app_label}_{opts.model_name}"
        obj = model._default_manager.order_by("pk").first()
        pages.append((f"{opts.label} changelist", reverse(f"{prefix}_changelist"), 200))
        if model_admin.has_add_permission(request):
            pages.append((f"{opts.label} add", reverse(f"{prefix}_add"), 200))
        if obj is not None:
            pages.append((f"{opts.label} change", reverse(f"{prefix}_change", args=[obj.pk]), 200))
            pages.append(
                (f"{opts.label} history", reverse(f"{prefix}_history", args=[obj.pk]), 200)
            )
        # The delete confirmation page of every object the admin lets the superuser delete.
        deletable = [
            o
            for o in model._default_manager.order_by("pk")
            if model_admin.has_delete_permission(request, o)
        ]
        if model._meta.app_label == "crosssell" and not deletable:
            problems.append(f"{opts.label}: no object the admin allows deleting was made")
        for o in deletable:
            pages.append((f"{opts.label} delete", reverse(f"{prefix}_delete", args=[o.pk]), 200))
        # The model admin's own views (overview, pin rule, progress...): a page answers 200 to a
        # GET, an action that only takes POST answers 405.
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None) or ""
            if not isinstance(pattern, URLPattern) or not name or name.endswith(standard):
                continue
            seen.add(name)
            if name not in PAGES | POST_ONLY:
                problems.append(f"{name}: a custom admin view in neither PAGES nor POST_ONLY")
                continue
            params = set(pattern.pattern.converters)
            if params - {"pk"} or (params and obj is None):
                problems.append(f"{name}: cannot be requested, needs {sorted(params)}")
                continue
            url = reverse(f"admin:{name}", args=[obj.pk] if params and obj else [])
            pages.append((f"{name} (custom)", url, 405 if name in POST_ONLY else 200))
    for name in sorted((PAGES | POST_ONLY) - seen):
        problems.append(f"{name}: listed in smoke.py but no admin has such a view")
    return pages, problems


def main() -> int:
    package = assert_installed_package()
    fresh_database()
    import django
    from django.core.management import call_command

    django.setup()
    # A shop set up as the README says gets no warning either.
    call_command("check", fail_level="WARNING")
    step("check: no errors, no warnings")
    call_command("migrate", interactive=False, verbosity=0)
    call_command("makemigrations", "--check", "--dry-run", verbosity=1)
    step("migrate; the package's migrations match its models")
    step(f"{load_templates(package)} crosssell templates load from the installed package")
    products = make_orders()
    from crosssell.models import Build

    live = Build.objects.filter(state=Build.State.LIVE).first()
    assert live is not None, "the rebuild made no live build"
    step(f"build #{live.pk} live")

    from django.contrib.auth.models import User
    from django.template import Context, Template
    from django.test import Client, RequestFactory

    User.objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client()
    client.force_login(User.objects.get(username="boss"))
    pages, failures = admin_pages()
    pages += [
        ("API schema", "/api/schema/", 200),
        ("API docs", "/api/docs/", 200),
        (
            "API list",
            f"/api/crosssell/products/{products[0].pk}/frequently-bought-together/",
            200,
        ),
    ]
    for label, url, expected in pages:
        response = client.get(url)
        status = response.status_code
        print(f"  {status} {url} ({label})")
        if status != expected:
            failures.append(f"{label}: GET {url} answered {status}, expected {expected}")
        elif status == 405 and response.get("Allow") != "POST":
            allow = response.get("Allow")
            failures.append(f"{label}: GET {url} answered 405 allowing {allow!r}, not only POST")
    step(f"{len(pages)} pages requested")

    request = RequestFactory().get("/")
    request.user = User.objects.get(username="boss")
    html = Template("{% load crosssell %}{% frequently_bought_together product %}").render(
        Context({"product": products[0], "request": request})
    )
    if 'data-crosssell="frequently-bought-together"' not in html:
        failures.append(f"the widget did not render: {html[:300]!r}")
    if failures:
        print("FAILED:\n" + "\n".join(failures))
        return 1
    step("the installed package works in the minimal shop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
