"""System checks for the ``CROSSSELL_*`` settings: bad values are reported, not raised on import."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured

from crosssell.conf import DEFAULT_PRODUCT_FIELDS
from crosssell.conf import settings as cs_settings

REQUIRED_PRODUCT_FIELDS = ("key", "name")


@checks.register()
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
    strategies = cs_settings.STRATEGIES
    if strategies is not None and (not isinstance(strategies, list | tuple) or not strategies):
        errors.append(
            checks.Error(
                "CROSSSELL_STRATEGIES must be None or a non-empty list.", id="crosssell.E003"
            )
        )
    errors.extend(_check_product_model())
    return errors


def _check_product_model() -> list[checks.CheckMessage]:
    from crosssell.models import get_product_model

    try:
        model = get_product_model()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="crosssell.E010")]
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
