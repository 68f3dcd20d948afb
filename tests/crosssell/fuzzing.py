"""Fuzzing the API with schemathesis: shared by the test (tests/crosssell/test_api_fuzz.py) and
the longer run (benchmarks/fuzz_api.py).

Cases are generated from the OpenAPI schema the app serves and sent to Django's WSGI handler in
process (no server, no network); each response goes through schemathesis's checks, and every
5xx is a failure whatever the checks say.
"""

from __future__ import annotations

import collections
import random
import sys
import traceback
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections
from django.urls import NoReverseMatch, reverse
from hypothesis import HealthCheck, Phase, given
from hypothesis import seed as hypothesis_seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
#: The operation ids of crosssell's API (crosssell.api.views).
OPERATIONS = r"^crosssell_"


@dataclass
class FuzzReport:
    """How many requests were sent, by operation and status code, and what failed."""

    requests: int = 0
    by_operation: collections.Counter[str] = field(default_factory=collections.Counter)
    by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)
    check_failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"requests: {self.requests}"]
        lines += [f"  {op}: {n}" for op, n in sorted(self.by_operation.items())]
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.by_status.items()))
        lines.append(f"status codes: {statuses}")
        lines.append(f"5xx responses: {len(self.server_errors)}")
        lines += [f"  {error}" for error in self.server_errors[:20]]
        lines.append(f"check failures: {len(self.check_failures)}")
        lines += [f"  {failure}" for failure in self.check_failures[:20]]
        return "\n".join(lines)


#: The exceptions behind 5xx responses, newest last (filled while in_process_wsgi() is active).
SERVER_EXCEPTIONS: list[str] = []


def _record_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    exc = sys.exc_info()[1]
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc and exc.__traceback__ else None
    SERVER_EXCEPTIONS.append(
        f"{type(exc).__name__}: {exc} at {where.filename}:{where.lineno}" if where else repr(exc)
    )


@contextmanager
def in_process_wsgi() -> Iterator[WSGIHandler]:
    """Django's WSGI handler, minus the per-request connection closing (as Django's test client
    does), so that requests see the test's transaction; exceptions go to SERVER_EXCEPTIONS."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    got_request_exception.connect(_record_exception)
    try:
        yield WSGIHandler()
    finally:
        got_request_exception.disconnect(_record_exception)
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@dataclass
class FuzzShop:
    """The data the fuzzer runs against, and a signed-in session for ``me/``."""

    product_ids: list[int]
    session_cookies: dict[str, str]


def seed_shop(n_products: int = 30, n_customers: int = 40, seed: int = 0) -> FuzzShop:
    """A random catalogue and order history with a live build, and a signed-in staff customer.

    Works inside a test's transaction: the cache generation is bumped here rather than on commit.
    """
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.test import Client

    from crosssell.engine.cooccurrence import CoCount
    from crosssell.models import user_customer_ref
    from crosssell.services import cache as cs_cache
    from crosssell.services.build import rebuild
    from crosssell.services.purchases import Line, record_order
    from crosssell.testing import make_product

    rng = random.Random(seed)
    categories = ["Photo", "Kitchen", "Garden", ""]
    catalogue = [
        make_product(
            category=categories[i % len(categories)],
            price=f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}",
            active=i % 10 != 9,  # some products are not for sale
        )
        for i in range(n_products)
    ]
    ids = [int(p.pk) for p in catalogue]
    User = get_user_model()
    customers = [User.objects.create_user(f"fuzz-{seed}-{i}") for i in range(n_customers)]
    customers[0].is_staff = True
    customers[0].save(update_fields=["is_staff"])
    # The evidence is shown to users who may view recommendations (not to all staff).
    customers[0].user_permissions.add(Permission.objects.get(codename="view_recommendation"))
    for c, user in enumerate(customers):
        for o in range(rng.randint(1, 4)):
            # Small id ranges overlap: co-purchases repeat across customers, so the privacy
            # threshold lets pairs through.
            basket = rng.sample(ids[: max(4, n_products // 3)], k=rng.randint(2, 4))
            record_order(
                f"fuzz-{seed}-{c}-{o}",
                [Line(pk) for pk in basket],
                customer_ref=user_customer_ref(user),
            )
    rebuild(strategy=CoCount(), trigger="fuzz")
    cs_cache.bump()
    client = Client()
    client.force_login(customers[0])
    name = settings.SESSION_COOKIE_NAME
    return FuzzShop(ids, {name: client.cookies[name].value})


def load_schema(app: WSGIHandler) -> Any:
    """The schema as the app serves it at ``/api/schema/``; generated in process when the
    project does not route it (the swapped-product test project)."""
    try:
        url = reverse("schema")
    except NoReverseMatch:
        from drf_spectacular.generators import SchemaGenerator

        raw = SchemaGenerator().get_schema(request=None, public=True)
        schema = schemathesis.openapi.from_dict(_plain(raw))
        schema.app = app  # what from_wsgi() does: cases are sent to the app, in process
        return schema
    return schemathesis.openapi.from_wsgi(url, app)


def _plain(value: Any) -> Any:
    """The generator's output as plain JSON types (it holds lazy strings and tuples)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


#: A refusal of schema-valid input by design: a cart of products that do not exist.
UNKNOWN_CART = {"product_ids": ["None of these products exists."]}
#: And an event whose impression token is not one the API signed (no schema can say which
#: strings carry a valid signature), or was served to another visitor than the request's (the
#: fuzzer's token was served to none), or that names a product its list did not show.
EVENT_REFUSALS = (
    "Not a valid impression token",
    "This token was served to another visitor",
    "Null characters are not allowed",  # DRF's own check of a string: no token has one
    "This token's impression was recorded",
    "Required for a click",
    "This list did not show",
)


def _refused_by_design(body: Any) -> bool:
    if body == UNKNOWN_CART:
        return True
    reasons: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)
        else:
            reasons.append(str(value))

    if not isinstance(body, dict) or set(body) != {"events"}:
        return False
    collect(body)
    return bool(reasons) and all(r.startswith(EVENT_REFUSALS) for r in reasons)


def fuzz(
    app: WSGIHandler,
    *,
    max_examples: int,
    known_ids: list[int] | None = None,
    cookies_for: Callable[[str], dict[str, str]] | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> FuzzReport:
    """Send ``max_examples`` generated cases per operation and generation mode.

    Parameters
    ----------
    app
        The WSGI application under test.
    max_examples
        Hypothesis examples per operation and mode (positive: valid by the schema; negative:
        invalid somewhere); a small input space may end a run earlier.
    known_ids
        Existing products: in half of the positive cases the first product id is replaced by
        one of these, so that the success paths are fuzzed too (random ids rarely exist).
    cookies_for
        Cookies by operation label (``"GET /api/..."``), e.g. a signed-in session.
    seed
        Makes the generated cases repeatable.
    """
    # Only crosssell's operations: the project may serve other APIs in the same schema.
    schema = load_schema(app).include(operation_id_regex=OPERATIONS)
    report = FuzzReport()
    for result in schema.get_all_operations():
        operation = result.ok()
        cookies = cookies_for(operation.label) if cookies_for else {}
        for mode in MODES:
            strategy = operation.as_strategy(generation_mode=mode)
            if mode is GenerationMode.POSITIVE and known_ids:
                token = _token(known_ids)
                strategy = st.tuples(
                    strategy, st.sampled_from(known_ids), st.booleans(), st.just(token)
                ).map(_with_known_id)
            run = _Run(f"{operation.label} [{mode.value}]", app, cookies, report, progress)
            run.send_all(strategy, max_examples, seed)
    return report


def _token(known_ids: list[int]) -> str:
    """An impression token as the API signs them, for a list that showed every known product."""
    from crosssell.services import tracking

    return tracking.sign(
        "00000000-0000-4000-8000-000000000000", None, known_ids, l="product",
        s=known_ids[:1], t=["fuzz"] * len(known_ids),
    )  # fmt: skip


def _with_known_id(drawn: tuple[Any, int, bool, str]) -> Any:
    case, product_id, replace, token = drawn
    if replace:
        if case.path_parameters and "product_id" in case.path_parameters:
            case.path_parameters["product_id"] = product_id
        elif isinstance(case.body, dict) and case.body.get("product_ids"):
            case.body["product_ids"][0] = product_id
        elif isinstance(case.body, dict) and isinstance(case.body.get("events"), list):
            # Events of a list the API returned: a real token, and a product it showed.
            for event in case.body["events"]:
                if isinstance(event, dict):
                    event["impression"] = token
                    if "product_id" in event:
                        event["product_id"] = product_id
    return case


@dataclass
class _Run:
    """One operation in one generation mode."""

    name: str
    app: WSGIHandler
    cookies: dict[str, str]
    report: FuzzReport
    progress: Callable[[int], None] | None

    def send_all(self, strategy: Any, max_examples: int, seed: int) -> None:
        @hypothesis_seed(seed * 1_000_003 + zlib.crc32(self.name.encode()))
        @hypothesis_settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: each case is reported as sent
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @given(case=strategy)
        def send(case: Any) -> None:
            self.send(case)

        send()

    def send(self, case: Any) -> None:
        report = self.report
        # A negative case that takes the credentials away must go without the session.
        negated = case.operation.schema.is_security_param_negated(case)
        cookies = {} if negated else self.cookies
        response = case.call(app=self.app, cookies=cookies)
        report.requests += 1
        report.by_operation[self.name] += 1
        report.by_status[response.status_code] += 1
        if self.progress:
            self.progress(report.requests)
        if response.status_code >= 500:
            cause = SERVER_EXCEPTIONS[-1] if SERVER_EXCEPTIONS else "?"
            report.server_errors.append(
                f"{response.status_code} {case.as_curl_command()} -> {cause}"
            )
            return
        excluded = []
        if response.status_code == 400 and _refused_by_design(_json(response)):
            excluded.append(positive_data_acceptance)
        try:
            case.validate_response(
                response,
                excluded_checks=excluded,
                transport_kwargs={"app": self.app, "cookies": cookies},
            )
        except FailureGroup as group:
            for failure in group.exceptions:
                report.check_failures.append(
                    f"{self.name}: {failure.title}: {case.as_curl_command()}"
                )


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
