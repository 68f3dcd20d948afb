"""No 500 from input: malformed and oversized numbers in every URL parameter, path id, form
field and admin parameter of the shop, the admin and the API get an answer below 500.

In the style of the API fuzz run (tests/crosssell/test_api_fuzz.py), but over the pages that
schemathesis cannot see: a fixed list of bad values crossed with every place a number is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.urls import NoReverseMatch, reverse

from crosssell.admin.recommendations import PinRuleForm
from crosssell.engine.cooccurrence import CoCount
from crosssell.models import Build, Experiment, Variant
from crosssell.services.build import rebuild
from crosssell.services.purchases import Line, record_order
from crosssell.testing import make_product

pytestmark = pytest.mark.django_db

#: The values an attacker or a careless user types where a number is expected.
BAD_VALUES = [
    "9" * 5000,  # int() itself refuses over 4300 digits
    "9" * 20,  # over 64 bits: the database refuses it
    "-1",
    "0",
    "1e5",
    "NaN",
    "1.5",
    "\u0661\u0662",  # Arabic-Indic digits: str.isdigit() says yes
    "",
    "\x00",
    "%",
]
#: Path segments: only what an ``<int:...>`` route or a free segment can carry.
BAD_SEGMENTS = ["9" * 5000, "9" * 20, "0", "00"]


def quantity_like(value: str) -> bool:
    """A number a shop's form could post (blank, or a few digits with a sign; Django's
    IntegerField reads any Unicode digits)."""
    text = value.strip()
    return not text or (len(text) <= 10 and text.lstrip("+-").isdigit())


class Sweep:
    """Sends requests, collects every one that answered 5xx or raised, or, where the code
    guarantees an exact answer (``expect``), answered anything else."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.sent = 0

    def __call__(
        self, label: str, send: Callable[[], Any], expect: Collection[int] | None = None
    ) -> None:
        self.sent += 1
        try:
            status = send().status_code
        except Exception as exc:  # the test client re-raises the view's exception
            self.failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:200]}")
            return
        if status >= 500 or (expect is not None and status not in expect):
            wanted = "" if expect is None else f" (expected {sorted(expect)})"
            self.failures.append(f"{label}: {status}{wanted}")

    def report(self) -> str:
        return f"{len(self.failures)} of {self.sent} requests failed:\n" + "\n".join(
            self.failures[:60]
        )


def short(value: str) -> str:
    return repr(value if len(value) < 30 else f"{value[:6]}...({len(value)} chars)")


def url_or_none(name: str, **kwargs: Any) -> str | None:
    try:
        return reverse(name, **kwargs)
    except NoReverseMatch:
        return None


@pytest.fixture
def data(django_capture_on_commit_callbacks: Any) -> dict[str, Any]:
    cache.clear()
    products = [make_product(category="Photo") for _ in range(4)]
    for i in range(4):
        record_order(f"sweep{i}", [Line(p.pk) for p in products[:3]], customer_ref=f"c{i}")
    with django_capture_on_commit_callbacks(execute=True):
        build = rebuild(strategy=CoCount())
    experiment = Experiment.objects.create(name="sweep")
    Variant.objects.create(experiment=experiment, name="a", weight=1)
    found = {"product": products[0], "other": products[3], "build": build, "experiment": experiment}
    if apps.is_installed("shop"):
        from shop.models import Order, OrderLine

        order = Order.objects.create(number="SWEEP-1", name="A", email="a@example.com", total=10)
        OrderLine.objects.create(order=order, product=products[0], quantity=1, unit_price=10)
        found["order"] = order
    return found


@pytest.fixture
def boss() -> Client:
    get_user_model().objects.create_superuser("sweeper", "s@example.com", "pw")
    client = Client()
    client.login(username="sweeper", password="pw")
    return client


@pytest.fixture(autouse=True)
def _no_rate_limits(settings: Any) -> None:
    # The sweep measures answers to input, not 429s.
    settings.SHOP_RATE_LIMITS = {}
    rates = dict(settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}))
    rates.pop("crosssell", None)
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


@pytest.mark.slow  # about 1 minute each
def test_storefront_and_api_answer_bad_numbers_below_500(data: dict[str, Any]) -> None:
    sweep, client = Sweep(), Client()
    pk = data["product"].pk
    catalog = url_or_none("shop:catalog")
    fbt = "/api/crosssell/products/{}/frequently-bought-together/"
    home = client.get("/").status_code  # no page is parameterised by ?cs=&csp=
    for bad in BAD_VALUES:
        q = quote(bad)
        label = short(bad)
        # The tracking middleware reads ?cs=&csp= on every page: a bad one is ignored, the
        # page answers as without it (TESTING.md, "No 500 from input").
        sweep(f"GET /?cs=x&csp={label}", lambda q=q: client.get(f"/?cs=x&csp={q}"), {home})
        sweep(f"GET fbt limit={label}", lambda q=q: client.get(f"{fbt.format(pk)}?limit={q}"))
        if catalog is not None:
            for param in ("page", "sort", "category", "q"):
                sweep(
                    f"GET catalog {param}={label}",
                    lambda q=q, p=param: client.get(f"{catalog}?{p}={q}"),
                )
            product_page = reverse("shop:product", args=[pk])
            sweep(
                f"GET product widgets={label}",
                lambda q=q, u=product_page: client.get(f"{u}?widgets={q}"),
            )
            for field in ("product_id", "quantity"):
                form = {"product_id": str(pk), "quantity": "1", field: bad}
                # Not a product id, or a quantity that is no number a form sends: 400; a
                # number out of range (0, -1): back to the page with a message.
                added = {400} if field == "product_id" or not quantity_like(bad) else {302}
                sweep(
                    f"POST cart add {field}={label}",
                    lambda f=form: client.post(reverse("shop:cart-add"), f),
                    added,
                )
                sweep(
                    f"POST cart add with cs {field}={label}",
                    lambda f=form: client.post(reverse("shop:cart-add"), {**f, "cs": "x"}),
                    added,
                )
                refused = not quantity_like(bad) or (
                    field == "product_id" and bad in ("", "0", "-1")
                )
                sweep(
                    f"POST cart update {field}={label}",
                    lambda f=form: client.post(reverse("shop:cart-update"), f),
                    {400} if refused else {302},
                )
            sweep(
                f"POST cart remove product_id={label}",
                lambda b=bad: client.post(reverse("shop:cart-remove"), {"product_id": b}),
            )
        if bad:
            cart = reverse("crosssell-api:cart")
            sweep(
                f"POST api cart limit={label}",
                lambda q=q, cart=cart: client.post(
                    cart, {"product_ids": [pk], "limit": q}, content_type="application/json"
                ),
            )
    for segment in BAD_SEGMENTS:
        label = short(segment)
        sweep(f"GET fbt {label}", lambda s=segment: client.get(fbt.format(s)), {404})
        shop_api = url_or_none("shop-api-product", args=[1])
        if shop_api is not None:
            sweep(
                f"GET shop api {label}",
                lambda s=segment, u=shop_api: client.get(u.replace("/1/", f"/{s}/")),
            )
        if catalog is not None:
            sweep(f"GET product {label}", lambda s=segment: client.get(f"/products/{s}/"), {404})
    assert sweep.sent > 150
    assert not sweep.failures, sweep.report()


def _admin_urls(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Every admin page that reads an id or a number: (label, url with {} for the value)."""
    urls: list[tuple[str, str]] = []
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        base = f"admin:{opts.app_label}_{opts.model_name}"
        changelist = reverse(f"{base}_changelist")
        urls += [
            (f"{opts.label} changelist ?p=", changelist + "?p={}"),
            (f"{opts.label} changelist ?o=", changelist + "?o={}"),
            (f"{opts.label} changelist ?id__exact=", changelist + "?id__exact={}"),
            (f"{opts.label} changelist ?q=", changelist + "?q={}"),
        ]
        for field in opts.get_fields():
            if field.is_relation and field.many_to_one:
                urls.append(
                    (
                        f"{opts.label} changelist ?{field.name}__id__exact=",
                        changelist + f"?{field.name}__id__exact={{}}",
                    )
                )
        for flt in model_admin.list_filter:
            name = getattr(flt, "parameter_name", None)
            if name:
                urls.append((f"{opts.label} changelist ?{name}=", changelist + f"?{name}={{}}"))
        for view in ("change", "delete", "history"):
            sample = reverse(f"{base}_{view}", args=["12345"])
            urls.append((f"{opts.label} {view} <id>", sample.replace("12345", "{}")))
    urls.append(
        (
            "autocomplete page=",
            reverse("admin:autocomplete") + "?app_label=crosssell&model_name=recommendation"
            "&field_name=target&term=a&page={}",
        )
    )
    for name in ("crosssell_build_progress",):
        sample = reverse(f"admin:{name}", args=[12345])
        urls.append((name + " <id>", sample.replace("12345", "{}")))
    urls.append(
        (
            "recommendation ?build=",
            reverse("admin:crosssell_recommendation_changelist") + "?build={}",
        )
    )
    return urls


@pytest.mark.slow  # about 1 minute each
def test_admin_answers_bad_numbers_below_500(data: dict[str, Any], boss: Client) -> None:
    sweep = Sweep()
    pk = data["product"].pk
    curate = reverse("admin:crosssell_recommendation_curate")
    pin_rule = reverse("admin:crosssell_recommendation_pin_rule")
    posts: list[tuple[str, str]] = [
        (name, reverse(f"admin:{name}", args=[12345]).replace("12345", "{}"))
        for name in (
            "crosssell_build_publish",
            "crosssell_experiment_end",
            "crosssell_experiment_start",
        )
    ]
    for bad in BAD_VALUES:
        q, label = quote(bad), short(bad)
        for what, url in _admin_urls(data):
            if "{}" in url.split("?")[0] and not (bad.isascii() and bad.isdigit()):
                continue  # a path segment that no route matches: the URL resolver's 404
            # ?build= is a build's id, "live" or "curated": anything else is a bad request.
            expect = ({400} if bad else {200}) if what == "recommendation ?build=" else None
            sweep(f"GET {what}{label}", lambda u=url, q=q: boss.get(u.format(q)), expect)
        for field in ("source", "target"):
            params = {"op": "pin", "source": str(pk), "target": str(pk), field: bad}
            sweep(
                f"POST curate ?{field}={label}",
                lambda p=params: boss.post(
                    curate + "?" + "&".join(f"{k}={quote(v)}" for k, v in p.items())
                ),
            )
            sweep(f"POST curate form {field}={label}", lambda p=params: boss.post(curate, p))
        for field in ("min_customers", "min_lift"):
            form = {"min_lift": "1", "min_customers": "1", "kind": "bought_together", field: bad}
            # Refused: 400, the form again with its errors; a number in range: the preview.
            accepted = PinRuleForm(form).is_valid()
            sweep(
                f"POST pin rule {field}={label}",
                lambda f=form: boss.post(pin_rule, f),
                {200} if accepted else {400},
            )
        product_add = url_or_none("admin:crosssell_product_add")
        if product_add is not None:
            for field in ("price", "stock", "parent"):
                form = {"name": "x", "sku": "SWEEP", "price": "1", "is_active": "on", field: bad}
                sweep(
                    f"POST product add {field}={label}",
                    lambda f=form, u=product_add: boss.post(u, f),
                )
        for field in ("source", "target", "rank"):
            form = {
                "source": str(pk), "target": str(pk), "kind": "bought_together",
                "status": "pinned", "rank": "0", field: bad,
            }  # fmt: skip
            sweep(
                f"POST recommendation add {field}={label}",
                lambda f=form: boss.post(reverse("admin:crosssell_recommendation_add"), f),
            )
        for field, form in _product_change_forms(boss, pk, data["other"].pk, bad):
            sweep(
                f"POST product change {field}={label}",
                lambda f=form: boss.post(reverse("admin:crosssell_product_change", args=[pk]), f),
            )
    for segment in BAD_SEGMENTS:
        for name, url in posts:
            sweep(f"POST {name} {short(segment)}", lambda u=url, s=segment: boss.post(u.format(s)))
    assert sweep.sent > 500
    assert not sweep.failures, sweep.report()


def _product_change_forms(
    boss: Client, pk: int, other: int, bad: str
) -> list[tuple[str, dict[str, str]]]:
    """The product's change form (with the merchant's rows inline) with one bad number each,
    and once with the product recommended with itself."""
    if url_or_none("admin:crosssell_product_change", args=[pk]) is None:
        return []
    page = boss.get(reverse("admin:crosssell_product_change", args=[pk])).content.decode()
    prefix = re.search(r'name="([\w-]+)-TOTAL_FORMS"', page)
    assert prefix, "the product page has no inline formset"
    inline = prefix.group(1)
    base = {
        "name": "x", "sku": f"SWEEP{pk}", "price": "1", "is_active": "on",
        f"{inline}-TOTAL_FORMS": "1", f"{inline}-INITIAL_FORMS": "0",
        f"{inline}-MIN_NUM_FORMS": "0", f"{inline}-MAX_NUM_FORMS": "1000",
        f"{inline}-0-target": str(other), f"{inline}-0-kind": "bought_together",
        f"{inline}-0-status": "pinned", f"{inline}-0-rank": "0",
    }  # fmt: skip
    fields = ("price", "stock", "parent", f"{inline}-0-target", f"{inline}-0-rank")
    fields += (f"{inline}-TOTAL_FORMS",)
    forms = [(field, {**base, field: bad}) for field in fields]
    return [*forms, ("itself as target", {**base, f"{inline}-0-target": str(pk)})]


class FormFields(HTMLParser):
    """The names of a page's form fields, with the values the page filled in."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        name = attr.get("name")
        if tag not in ("input", "select", "textarea") or not name:
            return
        if name == "csrfmiddlewaretoken" or "__prefix__" in name or name.startswith("_"):
            return
        if attr.get("type") == "checkbox" and "checked" not in attr:
            self.values.setdefault(name, "")
            return
        self.values[name] = attr.get("value") or self.values.get(name, "")


def _admin_form_pages(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Every registered model's add page, and the change pages of a product, an experiment and an
    order (forms with inline rows)."""
    pages = [
        (
            f"{model._meta.label} add",
            reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add"),
        )
        for model in admin.site._registry
    ]
    for name in ("product", "experiment", "order"):
        if name not in data:
            continue
        obj = data[name]
        opts = obj._meta
        url = url_or_none(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        if url is not None:
            pages.append((f"{name} change", url))
    return pages


@pytest.mark.slow  # about 1 minute
def test_every_admin_form_answers_bad_values_below_500(data: dict[str, Any], boss: Client) -> None:
    """Each field of each admin form (inline rows and management forms included), one at a time,
    set to each bad value, the other fields as the page filled them in."""
    sweep, forms = Sweep(), 0
    for what, url in _admin_form_pages(data):
        page = boss.get(url)
        if page.status_code != 200:
            continue  # no add permission for anyone (builds): nothing to post
        parser = FormFields()
        parser.feed(page.content.decode())
        forms += 1
        for field in parser.values:
            for bad in BAD_VALUES:
                form = {**parser.values, field: bad}
                sweep(f"POST {what} {field}={short(bad)}", lambda u=url, f=form: boss.post(u, f))
    assert forms >= 5 and sweep.sent > 300
    assert not sweep.failures, sweep.report()


def test_the_known_cases_answer_400_or_404(data: dict[str, Any], boss: Client) -> None:
    """The probe's findings, one by one, with the exact answer."""
    client = Client()
    huge, over = "9" * 5000, "9" * 20
    # ?cs=&csp= parameterises no page: a bad one is ignored (recorded as nothing).
    assert client.get(f"/?cs=x&csp={huge}").status_code == client.get("/").status_code
    fbt = f"/api/crosssell/products/{huge}/frequently-bought-together/"
    assert client.get(fbt).status_code == 404
    if apps.is_installed("shop"):
        for bad in (over, "abc", "-1", ""):
            assert client.post("/cart/add/", {"product_id": bad}).status_code == 400
        assert not client.session.get("cart")
    curate = reverse("admin:crosssell_recommendation_curate")
    assert boss.post(f"{curate}?op=pin&source={over}&target=1").status_code == 400
    changelist = reverse("admin:crosssell_recommendation_changelist")
    for bad in (over, "x", "0"):
        assert boss.get(f"{changelist}?build={bad}").status_code == 400
    assert boss.get(f"{changelist}?build=live").status_code == 200
    pin_rule = reverse("admin:crosssell_recommendation_pin_rule")
    form = {"min_lift": "1", "min_customers": over, "kind": "bought_together"}
    page = boss.post(pin_rule, form)
    assert page.status_code == 400 and "min_customers" in page.context["form"].errors
    if apps.is_installed("shop"):
        for bad in (over, "abc", "1.5"):
            added = client.post("/cart/add/", {"product_id": "1", "quantity": bad})
            assert added.status_code == 400
            updated = client.post("/cart/update/", {"product_id": "1", "quantity": bad})
            assert updated.status_code == 400
    add = reverse("admin:crosssell_recommendation_add")
    form = {
        "source": over,
        "target": "1",
        "kind": "bought_together",
        "status": "pinned",
        "rank": "0",
    }
    assert boss.post(add, form).status_code == 400  # the form again, with its errors
    build = Build.objects.get(state=Build.State.LIVE)
    assert boss.get(reverse("admin:crosssell_build_change", args=[build.pk])).status_code == 200
