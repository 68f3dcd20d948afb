"""Fixtures of the Oscar test shop: a catalogue (product classes, a partner, stock records, a
category tree, a parent with sizes) and orders placed through Oscar's own ``OrderCreator``."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _fresh_cache(settings: Any, tmp_path: Path) -> Iterator[None]:
    """Each test starts with an empty cache; tasks run in-process unless a real worker runs."""
    from django.core.cache import cache

    from crosssell.celery_app import app
    from crosssell.services import cache as cs_cache

    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    cs_cache.forget_local()
    eager = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = eager


@dataclass
class Shop:
    """The catalogue the tests share, by name."""

    products: dict[str, Any] = field(default_factory=dict)
    categories: dict[str, Any] = field(default_factory=dict)
    users: list[Any] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.products[name]


def _product(cls: Any, partner: Any, title: str, price: str | None, stock: int | None,
             **kwargs: Any) -> Any:  # fmt: skip
    from oscar.core.loading import get_model

    product_model = get_model("catalogue", "Product")
    product = product_model.objects.create(
        title=title, upc=title.lower().replace(" ", "-"), product_class=cls, **kwargs
    )
    if price is not None:
        product.stockrecords.create(
            partner=partner,
            partner_sku=f"sku-{product.pk}",
            price_currency="GBP",
            price=D(price),
            num_in_stock=stock,
        )
    return product


@pytest.fixture
def shop(db: None) -> Shop:
    """Gadgets (stock tracked) and e-books (not tracked) in a two-level category tree, and a
    T-shirt sold in sizes (children), one of them sold out."""
    from django.contrib.auth import get_user_model
    from oscar.core.loading import get_model

    product_class = get_model("catalogue", "ProductClass")
    partner_model = get_model("partner", "Partner")
    category = get_model("catalogue", "Category")
    country = get_model("address", "Country")
    country.objects.get_or_create(
        iso_3166_1_a2="GB",
        defaults={"name": "United Kingdom", "printable_name": "United Kingdom",
                  "is_shipping_country": True},
    )  # fmt: skip
    gadget = product_class.objects.create(name="Gadget", track_stock=True)
    ebook = product_class.objects.create(name="E-book", track_stock=False)
    clothing = product_class.objects.create(name="Clothing", track_stock=True)
    partner = partner_model.objects.create(name="Warehouse")
    result = Shop()
    electronics = category.add_root(name="Electronics", slug="electronics")
    result.categories = {
        "Electronics": electronics,
        "Cameras": electronics.add_child(name="Cameras", slug="cameras"),
        "Accessories": electronics.add_child(name="Accessories", slug="accessories"),
        "Books": category.add_root(name="Books", slug="books"),
        "Clothes": category.add_root(name="Clothes", slug="clothes"),
    }
    rows = [
        ("Camera", gadget, "499.00", 50, ["Cameras"]),
        ("Memory Card", gadget, "12.50", 50, ["Accessories"]),
        ("Camera Bag", gadget, "35.00", 20, ["Accessories"]),
        ("Tripod", gadget, "1249.99", 10, ["Accessories", "Cameras"]),
        ("Spare Battery", gadget, "19.99", 30, ["Accessories"]),
        ("Lens Cloth", gadget, "4.99", 100, ["Accessories"]),
        ("Photo Guide", ebook, "9.99", None, ["Books"]),
        ("Sold Out Strap", gadget, "7.00", 0, ["Accessories"]),
        ("Hidden Filter", gadget, "15.00", 10, ["Accessories"]),
        ("No Price Cap", gadget, None, None, ["Accessories"]),
    ]
    for title, cls, price, stock, cats in rows:
        product = _product(cls, partner, title, price, stock,
                           is_public=title != "Hidden Filter")  # fmt: skip
        for name in cats:
            product.categories.add(result.categories[name])
        result.products[title] = product
    shirt = _product(clothing, partner, "T-Shirt", None, None, structure="parent")
    shirt.categories.add(result.categories["Clothes"])
    result.products["T-Shirt"] = shirt
    for size, stock in [("S", 10), ("M", 0)]:
        result.products[f"T-Shirt {size}"] = _product(
            None, partner, f"T-Shirt {size}", "15.00", stock, structure="child", parent=shirt
        )
    user_model = get_user_model()
    result.users = [
        user_model.objects.create_user(
            username=f"customer{i}", email=f"customer{i}@example.com", password="secret-pass-1"
        )
        for i in range(6)
    ]
    return result


def fbt_rows(html: str) -> list[tuple[int, str]]:
    """``(product id, strategy)`` of the "frequently bought together" widget of a page."""
    parts = html.split('data-crosssell="frequently-bought-together"', 1)
    if len(parts) < 2:
        return []
    body = parts[1].split("</section>")[0]
    found = re.findall(
        r'<li class="cs-fbt-item" data-product-id="(\d+)" data-strategy="([^"]*)"', body
    )
    return [(int(i), strategy) for i, strategy in found]


def fbt_ids(html: str) -> list[int]:
    """The product ids of the "frequently bought together" widget of a page, in order."""
    return [i for i, _ in fbt_rows(html)]


@pytest.fixture
def fbt() -> Callable[[str], list[int]]:
    """``fbt(html)``: the ids the page's "frequently bought together" widget shows."""
    return fbt_ids


@pytest.fixture
def fbt_strategies() -> Callable[[str], list[tuple[int, str]]]:
    """``fbt_strategies(html)``: ``(id, strategy)`` of each product the widget shows."""
    return fbt_rows


def place_order(user: Any, products: list[Any], number: str | None = None) -> Any:
    """An order placed through Oscar's ``OrderCreator`` (Oscar's own test factory): it sends
    ``order_placed`` as a checkout does."""
    from oscar.apps.partner.strategy import Default
    from oscar.core.loading import get_model
    from oscar.test.factories import create_order

    basket = get_model("basket", "Basket").objects.create(owner=user)
    basket.strategy = Default()
    for product in products:
        basket.add_product(product, 1)
    return create_order(number=number, basket=basket, user=user)


@pytest.fixture
def order() -> Callable[..., Any]:
    """``order(user, products, number=None)``: place an order through Oscar."""
    return place_order


@pytest.fixture
def orders(shop: Shop) -> list[Any]:
    """Six customers bought the camera with a memory card, a bag and a battery (four of them the
    tripod too, the even ones the guide); the odd ones also ordered, another day, a lens cloth
    with the T-shirt in size S."""
    placed = []
    for i, user in enumerate(shop.users):
        names = ["Camera", "Memory Card", "Camera Bag", "Spare Battery"]
        names += ["Tripod"] if i < 4 else []
        names += [] if i % 2 else ["Photo Guide"]
        placed.append(place_order(user, [shop[n] for n in names], number=f"PAST-1{i}"))
        if i % 2:
            extra = [shop["Lens Cloth"], shop["T-Shirt S"]]
            placed.append(place_order(user, extra, number=f"PAST-2{i}"))
    return placed


@pytest.fixture
def rebuilt(orders: list[Any]) -> Any:
    from crosssell.services.build import rebuild

    return rebuild(trigger="test")


# ------------------------------------------------------------------------------ Celery worker


class Worker:
    """A real ``celery -A crosssell.celery_app worker`` process (the shop has no Celery app of
    its own), on the test database and Redis."""

    def __init__(self, env: dict[str, str]) -> None:
        self.name = f"oscar-{os.getpid()}@{socket.gethostname()}"
        cmd = [
            sys.executable, "-m", "celery", "-A", "crosssell.celery_app", "worker",
            "-n", self.name,
            "-c", "1", "-P", "prefork", "-l", "warning",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (open for the worker's life)
            prefix="celery-oscar-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=HERE, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 60.0) -> None:
        from crosssell.celery_app import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {Path(self.log.name).read_text()[-3000:]}")
            if app.control.ping(destination=[self.name], timeout=0.5):
                return
        raise RuntimeError(f"worker not ready: {Path(self.log.name).read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[Worker]:
    """A real Celery worker on the test database (eager mode off while it runs)."""
    from django.conf import settings
    from django.db import connection

    from crosssell.celery_app import app

    db = connection.settings_dict
    db_url = (
        f"postgres://{db['USER'] or 'postgres'}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}"
        f":{db['PORT'] or 5432}/{db['NAME']}"
    )
    app.conf.task_always_eager = False
    app.control.purge()
    env = {
        **os.environ,
        "OSCARSHOP_DATABASE_URL": db_url,
        "DJANGO_SETTINGS_MODULE": "oscarshop.settings",
        "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PYTHONPATH": os.pathsep.join(p for p in [str(HERE), os.environ.get("PYTHONPATH")] if p),
    }
    worker = Worker(env)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()
