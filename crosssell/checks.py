"""System checks for the ``CROSSSELL_*`` settings: bad values are reported, not raised on import."""

from __future__ import annotations

import difflib
import re
from typing import Any

from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.utils.module_loading import import_string

from crosssell.conf import DEFAULT_PRODUCT_FIELDS, DEFAULTS, PREFIX
from crosssell.conf import settings as cs_settings

REQUIRED_PRODUCT_FIELDS = ("key", "name")
ID = re.compile(r"crosssell\.[EWCID](\d{3})")


@checks.register(checks.Tags.security)
def check_crosssell(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every crosssell check, in the numeric order of their ids.

    The one check crosssell registers: Django runs its registered checks in the order of a set,
    so separately registered parts would come out in any order. ``check`` and ``check --deploy``
    run it (none of its parts is deployment-only), and so does ``check --tag security``, for the
    client-address part (W040-W042); the other parts then come along.
    """
    found = [
        *check_settings(app_configs=app_configs, **kwargs),  # E001-E032
        *check_client_address(app_configs=app_configs, **kwargs),  # W040-W042
        *check_celery(app_configs=app_configs, **kwargs),  # W050-W052
    ]
    return _in_id_order(found)


def _in_id_order(found: list[checks.CheckMessage]) -> list[checks.CheckMessage]:
    """``found`` sorted by the number of its ids (stable: the same number keeps its order)."""

    def number(message: checks.CheckMessage) -> int:
        match = ID.fullmatch(message.id or "")
        return int(match.group(1)) if match else 1000

    return sorted(found, key=number)


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for name in ("MIN_CUSTOMERS", "LIST_LENGTH", "DEFAULT_LIMIT", "MAX_LIMIT", "KEEP_BUILDS"):
        value = getattr(cs_settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            errors.append(
                checks.Error(
                    f"CROSSSELL_{name} must be a non-negative integer, not {value!r}.",
                    id="crosssell.E001",
                )
            )
    limits = (cs_settings.DEFAULT_LIMIT, cs_settings.MAX_LIMIT)
    if all(isinstance(v, int) for v in limits) and not 1 <= limits[0] <= limits[1]:
        errors.append(
            checks.Error(
                "CROSSSELL_DEFAULT_LIMIT must be between 1 and CROSSSELL_MAX_LIMIT.",
                id="crosssell.E002",
            )
        )
    strategies = cs_settings.STRATEGIES
    if strategies is not None and (not isinstance(strategies, list | tuple) or not strategies):
        errors.append(
            checks.Error(
                "CROSSSELL_STRATEGIES must be None or a non-empty list.", id="crosssell.E003"
            )
        )
    batch, seconds = cs_settings.TRACKING_BATCH, cs_settings.TRACKING_BATCH_SECONDS
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        errors.append(
            checks.Error(
                f"CROSSSELL_TRACKING_BATCH must be a positive integer, not {batch!r}.",
                id="crosssell.E004",
            )
        )
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        errors.append(
            checks.Error(
                f"CROSSSELL_TRACKING_BATCH_SECONDS must be a number of seconds, not {seconds!r}.",
                id="crosssell.E005",
            )
        )
    errors.extend(_check_unknown_settings())
    errors.extend(_check_product_model())
    errors.extend(_check_catalog())
    return errors


def _check_unknown_settings() -> list[checks.CheckMessage]:
    """A ``CROSSSELL_*`` setting crosssell does not read: most likely a misspelt one, whose
    intended setting then silently keeps its default."""
    known = [PREFIX + name for name in DEFAULTS]
    warnings: list[checks.CheckMessage] = []
    for name in sorted(dir(django_settings)):
        if not name.startswith(PREFIX) or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        warnings.append(
            checks.Warning(
                f"{name} is not a crosssell setting, so it has no effect.",
                hint=f"Did you mean {close[0]}?" if close else "See README, 'Settings'.",
                id="crosssell.W006",
            )
        )
    return warnings


def _check_product_model() -> list[checks.CheckMessage]:
    from crosssell.models import get_product_model

    try:
        model = get_product_model()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="crosssell.E010")]
    if not _reads_field_mapping():
        return []  # a catalog of its own (django-oscar's) reads no CROSSSELL_PRODUCT_FIELDS
    fields = cs_settings.PRODUCT_FIELDS
    errors: list[checks.CheckMessage] = []
    unknown = set(fields) - set(DEFAULT_PRODUCT_FIELDS)
    if unknown:
        errors.append(
            checks.Error(
                f"CROSSSELL_PRODUCT_FIELDS has unknown keys {sorted(unknown)}; "
                f"known: {sorted(DEFAULT_PRODUCT_FIELDS)}.",
                id="crosssell.E011",
            )
        )
    for role, lookup in fields.items():
        if lookup is None:
            if role in REQUIRED_PRODUCT_FIELDS:
                errors.append(
                    checks.Error(
                        f"CROSSSELL_PRODUCT_FIELDS[{role!r}] is required.", id="crosssell.E012"
                    )
                )
            continue
        if not _lookup_exists(model, lookup):
            errors.append(
                checks.Error(
                    f"CROSSSELL_PRODUCT_FIELDS[{role!r}] = {lookup!r}: {model._meta.label} has "
                    "no such field. Map it to one of the model's fields, or to None.",
                    id="crosssell.E013",
                )
            )
    return errors


def _check_catalog() -> list[checks.CheckMessage]:
    """The multi-valued lookups, the catalog and the money formatter (crosssell.E030-E032,
    W030), emitted in the order of their ids."""
    from crosssell.models import get_product_model
    from crosssell.services.catalog import SINGLE_ROLES, Catalog, analyse

    errors: list[checks.CheckMessage] = []
    try:
        model = get_product_model()
    except ImproperlyConfigured:
        model = None  # reported as crosssell.E010
    fields = cs_settings.PRODUCT_FIELDS if _reads_field_mapping() else {}
    for role, lookup in fields.items() if model is not None else ():
        if not lookup or not _lookup_exists(model, lookup):
            continue
        found = analyse(model, lookup)
        if role in SINGLE_ROLES and found.multi:
            errors.append(
                checks.Error(
                    f"CROSSSELL_PRODUCT_FIELDS[{role!r}] = {lookup!r} goes through the "
                    f"multi-valued relation {found.relation!r}: a product has one {role}.",
                    hint=f"Map {role!r} to a field of {get_product_model()._meta.label} itself"
                    + (" (a foreign key)." if role == "parent" else " (a unique field)."),
                    id="crosssell.E030",
                )
            )
        last = _last_field(model, lookup)
        if role != "parent" and last is not None and last.is_relation:
            errors.append(
                checks.Warning(
                    f"CROSSSELL_PRODUCT_FIELDS[{role!r}] = {lookup!r} ends on a relation, so "
                    f"crosssell reads the related row's primary key as the {role}.",
                    hint=f"Name a field of the related model, e.g. '{lookup}__name'.",
                    id="crosssell.W030",
                )
            )
    catalog_path = cs_settings.CATALOG
    try:
        cls = import_string(catalog_path) if isinstance(catalog_path, str) else catalog_path
    except ImportError as exc:
        cls = exc
    if not (isinstance(cls, type) and issubclass(cls, Catalog)):
        reason = f"cannot be imported ({cls})" if isinstance(cls, ImportError) else "is not one"
        errors.append(
            checks.Error(
                f"CROSSSELL_CATALOG = {catalog_path!r} must name a subclass of "
                f"crosssell.services.catalog.Catalog; it {reason}.",
                id="crosssell.E031",
            )
        )
    errors.extend(_check_money())
    return errors


def _reads_field_mapping() -> bool:
    """Whether the catalog reads ``CROSSSELL_PRODUCT_FIELDS`` (a ``FieldCatalog``; an
    unimportable one is reported by crosssell.E031 and the mapping is still checked)."""
    from crosssell.services.catalog import FieldCatalog

    path = cs_settings.CATALOG
    try:
        cls = import_string(path) if isinstance(path, str) else path
    except ImportError:
        return True
    return not isinstance(cls, type) or issubclass(cls, FieldCatalog)


def _check_money() -> list[checks.CheckMessage]:
    """``CROSSSELL_FORMAT_MONEY`` names a callable that turns a Decimal into a str."""
    from decimal import Decimal

    value = cs_settings.FORMAT_MONEY
    if value is None:
        return []
    try:
        func = import_string(value) if isinstance(value, str) else value
        if not callable(func):
            raise TypeError("it is not callable")
        sample = func(Decimal("1234.5"))
        if not isinstance(sample, str):
            raise TypeError(f"it returned {type(sample).__name__} for Decimal('1234.5'), not str")
    except Exception as exc:  # any failure of the shop's own code is reported, not raised
        return [
            checks.Error(
                f"CROSSSELL_FORMAT_MONEY = {value!r} must name a callable (amount: Decimal) "
                f"-> str: {exc}",
                hint="Give a dotted path such as 'myshop.money.format_price', or None for "
                "Django's localised number.",
                id="crosssell.E032",
            )
        ]
    return []


def _last_field(model: Any, lookup: str) -> Any:
    opts, field = model._meta, None
    for part in lookup.split("__"):
        field = opts.get_field(part)
        if field.is_relation and field.related_model is not None:
            opts = field.related_model._meta
    return field


def _lookup_exists(model: Any, lookup: str) -> bool:
    opts = model._meta
    for part in lookup.split("__"):
        try:
            field = opts.get_field(part)
        except FieldDoesNotExist:
            return False
        if field.is_relation and field.related_model is not None:
            opts = field.related_model._meta
    return True


def check_client_address(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Throttles must not key on a header the client chooses (crosssell.W040-W042)."""
    from django.conf import settings as django_settings

    drf: dict[str, Any] = getattr(django_settings, "REST_FRAMEWORK", None) or {}
    drf_proxies, own_proxies = drf.get("NUM_PROXIES"), cs_settings.NUM_PROXIES
    warnings: list[checks.CheckMessage] = []
    for name, value in (
        ("CROSSSELL_NUM_PROXIES", own_proxies),
        ('REST_FRAMEWORK["NUM_PROXIES"]', drf_proxies),
    ):
        if value is not None and not _is_count(value):
            warnings.append(
                checks.Warning(
                    f"{name} must be None or a non-negative integer, not {value!r}; crosssell "
                    "counts it as 0 (X-Forwarded-For is ignored).",
                    id="crosssell.W042",
                )
            )
    counts = [v for v in (own_proxies, drf_proxies) if _is_count(v)]
    if len(counts) == 2 and counts[0] != counts[1]:
        warnings.append(
            checks.Warning(
                f"CROSSSELL_NUM_PROXIES ({own_proxies!r}) differs from "
                f'REST_FRAMEWORK["NUM_PROXIES"] ({drf_proxies!r}): crosssell\'s rate limits and '
                "the API's other throttles key on different addresses.",
                hint="Declare the number of proxies once, in REST_FRAMEWORK['NUM_PROXIES'].",
                id="crosssell.W041",
            )
        )
    if drf_proxies is None:
        try:
            from crosssell.api.throttling import spoofable_throttles
        except ImportError:  # no DRF, no DRF throttle
            spoofable = []
        else:
            spoofable = spoofable_throttles(drf.get("DEFAULT_THROTTLE_CLASSES") or [])
        if spoofable:
            warnings.append(
                checks.Warning(
                    f"REST_FRAMEWORK['NUM_PROXIES'] is unset, so the throttles {spoofable} key "
                    "anonymous clients on the raw X-Forwarded-For header, which any client can "
                    "set: rotating it defeats the rate limit.",
                    hint="Set REST_FRAMEWORK['NUM_PROXIES'] to the number of proxies in front of "
                    "the site (0 when none; X-Forwarded-For is then ignored).",
                    id="crosssell.W040",
                )
            )
    return _in_id_order(warnings)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_celery(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """crosssell's tasks must go to a broker the project configured (crosssell.W050-W052)."""
    from celery import current_app

    return celery_warnings(current_app._get_current_object())


def celery_warnings(app: Any) -> list[checks.CheckMessage]:
    """What is wrong with the Celery app ``app`` as the one crosssell's tasks are sent with."""
    from crosssell.tasks import is_fallback_app

    # crosssell.apps makes crosssell's own app current when the project created none; Celery's
    # fallback app (which reads no settings) would be current only if that failed.
    fallback = is_fallback_app(app)
    if app.conf.task_always_eager and not fallback:
        return []  # the tasks run in the process that sends them: no broker
    if fallback or (app.main == "crosssell" and not app.conf.broker_url):
        return [
            checks.Warning(
                "The project has no Celery app of its own, and crosssell's "
                "(crosssell.celery_app, which takes its place) has no broker configured: "
                "crosssell sends no task (not to Celery's default amqp://guest@localhost//, "
                "where no worker of this project listens). A checkout's update stays pending "
                "until the next rebuild (crosssell_rebuild), and nothing runs the periodic "
                "tasks.",
                hint="Set CELERY_BROKER_URL and run `celery -A crosssell.celery_app worker` and "
                "`celery -A crosssell.celery_app beat` with DJANGO_SETTINGS_MODULE set "
                "(README, 'Celery'), or CELERY_TASK_ALWAYS_EAGER = True to run the tasks in "
                "the web process.",
                id="crosssell.W050",
            )
        ]
    if not app.conf.broker_url:
        return [
            checks.Warning(
                f"The project's Celery app {app.main!r} has no broker configured: crosssell "
                "sends no task (not to Celery's default amqp://guest@localhost//, where no "
                "worker of this project listens). A checkout's update stays pending until the "
                "next rebuild (crosssell_rebuild).",
                hint="Set CELERY_BROKER_URL (read by the celery.py of the README), or "
                "CELERY_TASK_ALWAYS_EAGER = True to run the tasks in the web process.",
                id="crosssell.W051",
            )
        ]
    scheme = str(app.conf.broker_url).split(":", 1)[0]
    options = app.conf.broker_transport_options or {}
    if scheme in {"redis", "rediss"} and not options.get("socket_connect_timeout"):
        return [
            checks.Warning(
                "CELERY_BROKER_TRANSPORT_OPTIONS sets no socket_connect_timeout: while the Redis "
                "broker's host does not answer, each checkout waits for the operating system's "
                "connect timeout (minutes) before it gives up queueing its update.",
                hint='Set CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 1.0, '
                "\"socket_timeout\": 3.0} (README, 'Celery').",
                id="crosssell.W052",
            )
        ]
    return []
