"""Erasure is complete: every crosssell table, the shop's orders, and every process's lists.

A customer orders signed in and then as a guest with the same email, through the sample shop's
real pages (their visitors see widgets, click one, add from one; with the swapped-product
settings, which have no sample shop, through the services a shop calls), with other
customers; builds are kept for rollback and an experiment variant has its own build. After
``crosssell_customer erase`` every crosssell model is checked by an explicit rule (a new model
without a rule fails the test), the shop's orders are gone, and a pair that rested on the
customer is no longer served by the API or the widget, also when the erasure ran in another
process (with Redis, and with the embedded default's per-process memory cache).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Model
from django.template import Context, Template
from django.test import Client, RequestFactory

from crosssell.engine.cooccurrence import CoCount
from crosssell.models import (
    Build,
    CartVector,
    Event,
    Experiment,
    Impression,
    PendingUpdate,
    Purchase,
    Recommendation,
    Variant,
)
from crosssell.services import cache as cs_cache
from crosssell.services import cart_store, curation, tracking
from crosssell.services.build import rebuild, rebuild_lock
from crosssell.services.customers import Customer, erase_customer, export_customer
from crosssell.services.identity import email_key
from crosssell.services.locks import LockTimeout
from crosssell.services.purchases import Line, record_order
from crosssell.services.variants import build_variant
from crosssell.signals import customer_erased
from crosssell.testing import buy, make_product

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "Erase.Me@Example.com"
FBT = Recommendation.Kind.BOUGHT_TOGETHER
ALSO = Recommendation.Kind.ALSO_BOUGHT
TOKEN = re.compile(r'\?cs=([^"&]+)&(?:amp;)?csp=(\d+)')
CARD = re.compile(r'data-product-id="(\d+)"')
#: The sample shop's pages are used when it is installed (not in the swapped-model settings).
SHOP = apps.is_installed("shop")


@dataclass
class Scene:
    """What the erased customer left, and what must survive them."""

    ref: str
    products: dict[str, Model]
    via_shop: bool = False
    orders: list[str] = field(default_factory=list)
    visitors: list[str] = field(default_factory=list)
    other_visitor: str = ""
    other_order: str = ""
    live: int = 0
    kept: int = 0
    variant_build: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def pk(self, name: str) -> int:
        return int(self.products[name].pk)


def _checkout(client: Client, *products: Model, name: str, email: str, via: str = "") -> str:
    """Add ``products`` to the cart (the first from a widget's form when ``via`` is a token)
    and place the order; returns its number."""
    for i, p in enumerate(products):
        data: dict[str, Any] = {"product_id": p.pk, "quantity": 1}
        if via and i == 0:
            data["cs"] = via
        assert client.post("/cart/add/", data).status_code == 302
    assert client.post("/checkout/", {"name": name, "email": email}).status_code == 302
    return str(client.session["last_order"])


def _widget_token(client: Client, product: Model, target: Model) -> str:
    """Show ``product``'s page and follow its widget's link to ``target`` (a click)."""
    page = client.get(f"/products/{product.pk}/").content.decode()
    links = {int(pid): tok for tok, pid in TOKEN.findall(page)}
    assert target.pk in links, f"{target} is not in the widget of {product}"
    assert client.get(f"/products/{target.pk}/?cs={links[target.pk]}&csp={target.pk}").status_code
    return links[target.pk]


def make_scene(via_shop: bool) -> Scene:
    """The shop: A+B (3 customers with the erased one), A+C (5), a guest order of A+X, six
    popular products; two builds (one kept for rollback), a variant's build, a pin of A->C.

    ``via_shop``: the customer and the others order through the sample shop's pages (its
    orders, its cookies, its widgets' links); otherwise through the services a shop calls.
    """
    p = {n: make_product(n, price="10.00") for n in ["A", "B", "C", "X"]}
    p.update({f"N{i}": make_product(f"N{i}", price="10.00") for i in range(6)})
    user = get_user_model().objects.create_user("erase-me", email=EMAIL, password="pw-123456")
    for i in range(2):
        buy(f"ab-{i}", f"ab-cust-{i}", p["A"], p["B"])
    for i in range(4):
        buy(f"ac-{i}", f"ac-cust-{i}", p["A"], p["C"])
    for i in range(20):
        buy(f"n-{i}", f"n-cust-{i}", *(p[f"N{j}"] for j in range(6)))
    scene = Scene(str(user.pk), p, via_shop)
    scene.live = rebuild(strategy=CoCount()).pk
    served = _served(scene, "A")
    assert scene.pk("C") in served and scene.pk("B") not in served  # A+B: 2 customers so far
    if via_shop:
        _orders_through_the_shop(scene, user)
    else:
        _orders_through_the_services(scene)
    tracking.flush()

    # Builds: the new live one, the previous one kept for rollback, a variant's own.
    scene.kept, scene.live = scene.live, rebuild(strategy=CoCount()).pk
    experiment = Experiment.objects.create(name="erasure", placement="")
    Variant.objects.create(experiment=experiment, name="live")
    variant = Variant.objects.create(experiment=experiment, name="cocount", strategy="cocount")
    scene.variant_build = build_variant(variant).pk
    curation.pin(scene.pk("A"), scene.pk("C"))
    for build in (scene.live, scene.kept, scene.variant_build):
        assert Recommendation.objects.filter(
            build_id=build, source_id=scene.pk("A"), target_id=scene.pk("B")
        ).exists(), f"build {build} does not publish A+B"
    # Updates still waiting for a beat (the broker was down at checkout): the customer's
    # products' and another product's.
    PendingUpdate.objects.bulk_create(
        PendingUpdate(product_id=scene.pk(n)) for n in ("A", "B", "X", "N0")
    )
    scene.counts = {m.__name__: m._default_manager.count() for m in _models()}
    return scene


def _orders_through_the_shop(scene: Scene, user: Any) -> None:
    p = scene.products
    # The customer, signed in: sees A's widget, clicks C, adds C from the widget, orders A+B+C.
    signed_in = Client()
    signed_in.force_login(user)
    token = _widget_token(signed_in, p["A"], p["C"])
    scene.orders.append(
        _checkout(signed_in, p["C"], p["A"], p["B"], name="Erase Me", email=EMAIL, via=token)
    )
    # ...and as a guest in another browser, with the same email (another spelling): A+X.
    guest = Client()
    guest.get(f"/products/{p['X'].pk}/")
    scene.orders.append(_checkout(guest, p["A"], p["X"], name="E. Me", email=f" {EMAIL.lower()}"))
    # Someone else: a visit, a click, an order of N0+N1 (all of it stays).
    other = Client()
    _widget_token(other, p["N0"], p["N1"])
    scene.other_order = _checkout(other, p["N0"], p["N1"], name="Other", email="o@example.org")
    tracking.settle()
    scene.visitors = sorted(
        {signed_in.cookies[tracking.COOKIE].value, guest.cookies[tracking.COOKIE].value}
    )
    scene.other_visitor = other.cookies[tracking.COOKIE].value


def _orders_through_the_services(scene: Scene) -> None:
    """The same orders and events as a shop without the sample shop's pages records them."""
    p = scene.products
    scene.orders = ["ERASE-1", "ERASE-2"]
    scene.other_order = "OTHER-1"
    scene.visitors = ["0" * 31 + "1", "0" * 31 + "2"]
    scene.other_visitor = "0" * 31 + "3"
    with transaction.atomic():
        record_order("ERASE-1", [Line(p[n].pk) for n in "CAB"], customer_ref=scene.ref, email=EMAIL)
        record_order("ERASE-2", [Line(p[n].pk) for n in "AX"], email=f" {EMAIL.lower()}")
        record_order("OTHER-1", [Line(p[n].pk) for n in ("N0", "N1")], customer_ref="other-1")
    events: list[dict[str, Any]] = []
    for visitor, order, bought, clicked in (
        (scene.visitors[0], "ERASE-1", "CAB", "C"),
        (scene.visitors[1], "ERASE-2", "AX", ""),
        (scene.other_visitor, "OTHER-1", ["N0", "N1"], "N1"),
    ):
        shown = [p[n].pk for n in ("C", "N0", "N1")]
        impression = tracking.impression_event("product", visitor, [p["A"].pk], shown, [], None)
        events.append(impression)
        for kind in ["click", "add_to_cart"][: 1 if visitor == scene.other_visitor else 2]:
            if clicked:
                events.append(_event(kind, visitor, p[clicked].pk, impression=impression["id"]))
        events += [_event("purchase", visitor, p[n].pk, order=order) for n in bought]
    tracking.write(events)


def _event(kind: str, visitor: str, product: int, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "id": str(uuid.uuid4()), "visitor": visitor, "product": product, **extra}


def _models() -> list[type[Model]]:
    return list(apps.get_app_config("crosssell").get_models())


def _served(scene: Scene, name: str) -> list[int]:
    url = f"/api/crosssell/products/{scene.pk(name)}/frequently-bought-together/?limit=4"
    response = Client().get(url)
    assert response.status_code == 200, response.content
    return [r["id"] for r in response.json()["results"]]


def _widget(scene: Scene, name: str) -> list[int]:
    """The products of the widgets (frequently bought together, 4; customers also bought, 6):
    on the sample shop's product page, else as the template tags render them."""
    if scene.via_shop:
        page = Client().get(f"/products/{scene.pk(name)}/").content.decode()
        return [int(pid) for _, pid in TOKEN.findall(page)]
    html = Template(
        "{% load crosssell %}{% frequently_bought_together product limit=4 %}"
        "{% also_bought product limit=6 %}"
    ).render(Context({"product": scene.products[name], "request": RequestFactory().get("/")}))
    return [int(pid) for pid in CARD.findall(html)]


def _shop_orders() -> Any:
    from shop.models import Order

    return Order.objects


def _assert_pair_not_served(scene: Scene) -> None:
    """A+B rested on the erased customer: neither side shows the other, anywhere."""
    a, b = scene.pk("A"), scene.pk("B")
    assert b not in _served(scene, "A") and a not in _served(scene, "B")
    assert b not in _widget(scene, "A") and a not in _widget(scene, "B")


def _personal_markers(scene: Scene) -> list[str]:
    """Strings that only the erased customer's rows contain (as JSON values)."""
    key = email_key(EMAIL)
    values = [*scene.orders, *scene.visitors, f"u:{scene.ref}", key, f"e:{key}"]
    return [json.dumps(v) for v in values]


def _no_marker_anywhere(scene: Scene) -> None:
    """No row of any crosssell table holds an order number, a visitor id or an identity of the
    erased customer (whatever the table: a future one is read too)."""
    markers = _personal_markers(scene)
    for model in _models():
        for row in model._default_manager.values():
            text = json.dumps(row, default=str)
            found = [m for m in markers if m in text]
            assert not found, f"{model.__name__} row {row} still holds {found}"


def _check_every_table(scene: Scene) -> None:
    """One rule per crosssell model: a model without a rule fails (decide, then add one)."""
    a, b, c = scene.pk("A"), scene.pk("B"), scene.pk("C")

    def product(n: int) -> None:
        assert n == scene.counts["Product"]  # the catalog is not personal

    def purchase(n: int) -> None:
        assert not Purchase.objects.filter(order_ref__in=scene.orders).exists()
        assert not Purchase.objects.filter(customer_ref=scene.ref).exists()
        assert not Purchase.objects.filter(email_key=email_key(EMAIL)).exists()
        assert n == scene.counts["Purchase"] - 5  # A+B+C and A+X
        assert Purchase.objects.filter(order_ref=scene.other_order).count() == 2

    def build(n: int) -> None:
        # The kept build counted the customer: dropped; the served ones stay.
        assert not Build.objects.filter(pk=scene.kept).exists()
        assert set(Build.objects.values_list("pk", flat=True)) == {scene.live, scene.variant_build}
        assert Build.objects.get(pk=scene.live).state == Build.State.LIVE

    def recommendation(n: int) -> None:
        served = [scene.live, scene.variant_build]
        assert not Recommendation.objects.filter(build_id=scene.kept).exists()
        pair = Recommendation.objects.filter(build_id__in=served, source_id__in=[a, b])
        assert not pair.filter(target_id__in=[a, b]).exists()  # 2 customers left: gone
        for row in Recommendation.objects.filter(source_id=a, target_id=c):
            # 4 customers left: kept (pinned one too), counted again without the customer.
            assert row.evidence["customers"] == 4, (row.build_id, row.evidence)
            if row.kind == FBT:
                assert row.evidence["co_count"] == 4
        assert Recommendation.objects.filter(build__isnull=True, source_id=a, target_id=c).exists()
        for row in Recommendation.objects.filter(build_id__in=served).exclude(
            evidence__customers=0
        ):
            assert row.evidence.get("customers", 3) >= 3, row.evidence
        for build_id in served:  # no gap left where a row went
            for kind in (FBT, ALSO):
                ranks = list(
                    Recommendation.objects.filter(build_id=build_id, kind=kind, source_id=a)
                    .order_by("rank")
                    .values_list("rank", flat=True)
                )
                assert ranks == list(range(len(ranks)))

    def cart_vector(n: int) -> None:
        # The live build's vectors of the customer's products were written again from the
        # remaining purchases: A and B (2 customers left) are out of each other's. The kept
        # build went with its vectors; a variant's build stores none.
        assert set(CartVector.objects.values_list("build_id", flat=True)) <= {scene.live}
        for row in CartVector.objects.filter(product_id__in=[a, b]):
            assert not {a, b} & set(cart_store.unpack(row.terms)["product"].tolist())

    def unchanged(name: str) -> Callable[[int], None]:
        def check(n: int) -> None:
            assert n == scene.counts[name]  # the merchant's configuration

        return check

    def pending_update(n: int) -> None:
        # Done by the erasure itself, not left for a beat; another product's waits on.
        bought = [scene.pk(name) for name in "ABCX"]  # the erased customer's products
        assert not PendingUpdate.objects.filter(product_id__in=bought).exists()
        assert list(PendingUpdate.objects.values_list("product_id", flat=True)) == [scene.pk("N0")]

    def impression(n: int) -> None:
        assert not Impression.objects.filter(visitor__in=scene.visitors).exists()
        assert Impression.objects.filter(visitor=scene.other_visitor).exists()

    def event(n: int) -> None:
        assert not Event.objects.filter(visitor__in=scene.visitors).exists()
        assert not Event.objects.filter(order_ref__in=scene.orders).exists()
        others = set(
            Event.objects.filter(visitor=scene.other_visitor).values_list("type", flat=True)
        )
        assert others == {Event.Type.CLICK, Event.Type.PURCHASE}

    def cache_generation(n: int) -> None:
        assert n <= 1  # one row per cache alias, no personal data (the generic scan checks it)

    rules: dict[str, Callable[[int], None]] = {
        "Product": product,
        "Purchase": purchase,
        "Build": build,
        "Recommendation": recommendation,
        "CartVector": cart_vector,
        "Exclusion": unchanged("Exclusion"),
        "Experiment": unchanged("Experiment"),
        "Variant": unchanged("Variant"),
        "PendingUpdate": pending_update,
        "Impression": impression,
        "Event": event,
        "CacheGeneration": cache_generation,
    }
    models = {m.__name__: m for m in _models()}
    assert set(models) <= set(rules), (
        f"no erasure rule for {sorted(set(models) - set(rules))}: decide what an erasure does "
        "to it (crosssell/services/customers.py), then add its rule here"
    )
    for name, model in models.items():
        rules[name](model._default_manager.count())
    _no_marker_anywhere(scene)


def _check_before(scene: Scene) -> None:
    """The customer's data is there to begin with (or the checks after prove nothing)."""
    types = set(Event.objects.filter(visitor__in=scene.visitors).values_list("type", flat=True))
    assert types == {Event.Type.CLICK, Event.Type.ADD_TO_CART, Event.Type.PURCHASE}
    assert Impression.objects.filter(visitor__in=scene.visitors).count() >= 2
    assert Purchase.objects.filter(order_ref__in=scene.orders).count() == 5
    if scene.via_shop:
        assert _shop_orders().filter(number__in=scene.orders).count() == 2
    pending = set(PendingUpdate.objects.values_list("product_id", flat=True))
    assert pending == {scene.pk(n) for n in ("A", "B", "X", "N0")}
    assert scene.pk("B") in _served(scene, "A") and scene.pk("B") in _widget(scene, "A")
    with pytest.raises(AssertionError):
        _no_marker_anywhere(scene)


# -- the tests ---------------------------------------------------------------------------------


@pytest.fixture
def scene(transactional_db: None) -> Scene:
    """Committed for real, so every on-commit step (a publish's new generation, the
    incremental updates of the checkouts) runs as in production."""
    return make_scene(SHOP)


def test_erase_empties_every_table_and_the_lists_at_once(scene: Scene) -> None:
    _check_before(scene)
    out = StringIO()
    call_command("crosssell_customer", "erase", scene.ref, "--email", EMAIL, "--yes", stdout=out)
    assert "Erased 5 order line(s) in 2 order(s)" in out.getvalue()
    _check_every_table(scene)
    _assert_pair_not_served(scene)
    if scene.via_shop:
        # The shop's receiver: both orders, with names and emails, are gone; the other stays.
        orders = _shop_orders()
        assert not orders.filter(number__in=scene.orders).exists()
        assert not orders.filter(email__iexact=EMAIL).exists()
        assert orders.filter(number=scene.other_order).exists()


def test_erase_by_email_alone_finds_the_linked_account_orders(scene: Scene) -> None:
    # The guest order was linked to the account by its email: the email finds both.
    erased = erase_customer(Customer(email=EMAIL.upper()))
    assert sorted(erased.orders) == sorted(scene.orders)
    assert erased.purchases == 5 and len(erased.visitors) == 2
    _check_every_table(scene)


def test_export_lists_purchases_impressions_and_events(scene: Scene) -> None:
    out = StringIO()
    call_command("crosssell_customer", "export", scene.ref, "--email", EMAIL, stdout=out)
    data = json.loads(out.getvalue())
    assert {line["order"] for line in data["purchases"]} == set(scene.orders)
    assert sorted(data["visitors"]) == scene.visitors
    assert {e["type"] for e in data["events"]} == {"click", "add_to_cart", "purchase"}
    assert {e["visitor"] for e in data["events"]} == set(scene.visitors)
    assert data["impressions"] and {i["visitor"] for i in data["impressions"]} <= set(
        scene.visitors
    )
    purchases = [e for e in data["events"] if e["type"] == "purchase"]
    assert {e["order"] for e in purchases} == set(scene.orders) and len(purchases) == 5
    assert export_customer("nobody") == {
        "customer": "nobody",
        "email": "",
        "purchases": [],
        "visitors": [],
        "impressions": [],
        "events": [],
    }


def test_a_failing_receiver_erases_nothing(scene: Scene) -> None:
    def refuse(**kwargs: Any) -> None:
        raise RuntimeError("the shop cannot erase now")

    customer_erased.connect(refuse, dispatch_uid="test-refuse")
    try:
        with pytest.raises(RuntimeError):
            erase_customer(scene.ref)
    finally:
        customer_erased.disconnect(dispatch_uid="test-refuse")
    assert Purchase.objects.filter(order_ref__in=scene.orders).count() == 5
    if scene.via_shop:
        assert _shop_orders().filter(number__in=scene.orders).count() == 2
    assert Build.objects.filter(pk=scene.kept).exists()


def test_a_running_rebuild_holds_the_erasure_back(scene: Scene) -> None:
    with rebuild_lock():
        with pytest.raises(LockTimeout):
            erase_customer(scene.ref, wait=0)
        err = StringIO()
        with pytest.raises(Exception, match="A rebuild is running; nothing erased"):
            call_command(
                "crosssell_customer", "erase", scene.ref, "--yes", "--wait", "0",
                stderr=err,
            )  # fmt: skip
    assert Purchase.objects.filter(order_ref__in=scene.orders).count() == 5


def test_a_dead_running_build_that_counted_the_customer_is_dropped(scene: Scene) -> None:
    # A rebuild that crashed left its build marked running; the erasure holds the rebuild
    # lock, so it is dead, and its rows counted the customer.
    Build.objects.filter(pk=scene.kept).update(state=Build.State.RUNNING)
    erased = erase_customer(Customer(ref=scene.ref, email=EMAIL))
    assert scene.kept in erased.builds_dropped
    _check_every_table(scene)


class _ClosedPort:
    """A queue client whose every call fails as a Redis on a closed port does."""

    def __init__(self) -> None:
        import redis

        self.client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)

    def __call__(self) -> Any:
        return self.client


def test_an_unflushable_event_queue_stops_the_erasure(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queued events of the customer's visitors would be written after the erasure: refused,
    nothing erased, the cause named and the command failing, unless forced."""
    from crosssell.services import outbox
    from crosssell.services.customers import EventQueueUnavailable

    _check_before(scene)
    monkeypatch.setattr(outbox, "_redis", _ClosedPort())
    with pytest.raises(EventQueueUnavailable, match="event queue could not be flushed"):
        erase_customer(Customer(ref=scene.ref, email=EMAIL))
    with pytest.raises(Exception, match=r"Nothing erased: the event queue.*--force") as failed:
        call_command("crosssell_customer", "erase", scene.ref, "--email", EMAIL, "--yes")
    assert type(failed.value).__name__ == "CommandError"  # the command exits non-zero
    assert Purchase.objects.filter(order_ref__in=scene.orders).count() == 5
    assert Event.objects.filter(visitor__in=scene.visitors).exists()
    assert PendingUpdate.objects.filter(product_id=scene.pk("A")).exists()
    if scene.via_shop:
        assert _shop_orders().filter(number__in=scene.orders).count() == 2
    assert scene.pk("B") in _served(scene, "A")
    # Forced: everything crosssell holds goes (what the queue held is written later).
    out = StringIO()
    call_command(
        "crosssell_customer", "erase", scene.ref, "--email", EMAIL, "--yes", "--force", stdout=out
    )
    assert "Erased 5 order line(s)" in out.getvalue()
    _check_every_table(scene)


def test_a_customer_is_required(db: None) -> None:
    with pytest.raises(ValueError):
        Customer()
    with pytest.raises(Exception, match="Give a customer reference, an --email, or both"):
        call_command("crosssell_customer", "erase", "--yes")


# -- another process -------------------------------------------------------------------------


def _run_erase_elsewhere(scene: Scene, env: dict[str, str]) -> str:
    """``manage.py crosssell_customer erase`` in a process of its own, on the test database."""
    db = connection.settings_dict
    url = (
        f"postgres://{db['USER'] or 'postgres'}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}"
        f":{db['PORT'] or 5432}/{db['NAME']}"
    )
    cmd = [
        sys.executable, "manage.py", "crosssell_customer", "erase", scene.ref,
        "--email", EMAIL, "--yes",
    ]  # fmt: skip
    done = subprocess.run(
        cmd, cwd=ROOT, env={**env, "DATABASE_URL": url}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _needs_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("another process needs a database it can share: PostgreSQL (DATABASE_URL)")


@pytest.mark.django_db(transaction=True)
def test_another_process_erasing_is_seen_here_with_the_shared_cache() -> None:
    _needs_postgresql()
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs Redis (REDIS_URL)")
    scene = make_scene(SHOP)
    _check_before(scene)  # the lists are now cached here, in Redis and in this process
    out = _run_erase_elsewhere(scene, dict(os.environ))
    assert "Erased 5 order line(s)" in out
    # This process remembers the generation for LOCAL_SECONDS, then sees the new one.
    time.sleep(cs_cache.LOCAL_SECONDS + 0.1)
    _assert_pair_not_served(scene)
    _check_every_table(scene)
    if scene.via_shop:
        assert not _shop_orders().filter(number__in=scene.orders).exists()


@pytest.mark.django_db(transaction=True)
def test_another_process_erasing_is_seen_here_with_per_process_memory_caches(
    settings: Any,
) -> None:
    """The embedded default: each process has its own memory cache, so the generation lives in
    the database; a command's erasure reaches a web process all the same."""
    _needs_postgresql()
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cs_cache.forget_local()
    assert cs_cache.process_local()
    scene = make_scene(SHOP)
    _check_before(scene)  # cached in this process's memory
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # memory cache there too
    _run_erase_elsewhere(scene, env)
    time.sleep(cs_cache.LOCAL_SECONDS + 0.1)
    _assert_pair_not_served(scene)
    assert not Purchase.objects.filter(order_ref__in=scene.orders).exists()
