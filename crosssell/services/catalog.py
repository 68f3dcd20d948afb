"""The catalog: the one way crosssell reads the shop's products.

Every reader of products (serving, the widgets, the API, the build's extraction, the admin, the
importer's matching) goes through :func:`get_catalog`, an instance of the class named by
``CROSSSELL_CATALOG``. The default, :class:`FieldCatalog`, reads the fields named by
``CROSSSELL_PRODUCT_FIELDS``; a shop framework with its own rules (django-oscar's pricing
strategy, stock records and parent/child products) subclasses :class:`Catalog`.

Two rules hold for every catalog:

- one row per product: :meth:`Catalog.products` never joins a multi-valued relation, so a
  product with two categories or two stock records is read once;
- the database and Python agree: a product is in ``products().filter(sellable_q())`` exactly
  when :meth:`Catalog.is_sellable` says so for it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db.models import (
    Exists,
    Min,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.utils import formats
from django.utils.module_loading import import_string

from crosssell.conf import settings
from crosssell.models import get_product_model, product_field

#: The roles a product field can be mapped to (``CROSSSELL_PRODUCT_FIELDS``).
ROLES = ("key", "name", "text", "category", "price", "active", "stock", "parent", "image")
#: Roles that identify a product or link it to another: never through a multi-valued relation.
SINGLE_ROLES = ("key", "parent")
#: The prefix of the annotations that carry a multi-valued role's one value.
ANNOTATION_PREFIX = "crosssell_"
#: A sample amount whose formatting tells the widget's script how to format any amount.
MONEY_SAMPLE = Decimal("1234567.89")

ContentRow = tuple[int, str, str, str, Decimal | None]


def default_format_money(amount: Decimal) -> str:
    """Django's localised number with two decimals and no currency sign (the default of
    ``CROSSSELL_FORMAT_MONEY``); grouping follows ``USE_THOUSAND_SEPARATOR``."""
    return formats.number_format(amount, 2)


class Catalog:
    """How crosssell reads the shop's products; subclass it for a shop framework.

    The base class reads nothing by itself: :class:`FieldCatalog` (the default) implements
    :meth:`read`, and the other methods are written in terms of :meth:`products`,
    :meth:`sellable_q` and :meth:`read`.
    """

    @property
    def model(self) -> type[Model]:
        """The product model (``CROSSSELL_PRODUCT_MODEL``)."""
        return get_product_model()

    # --- the database side ------------------------------------------------------------------

    def products(self) -> QuerySet[Model]:
        """All products, one row per product, with what :meth:`read` needs loaded."""
        return self.model._default_manager.all()

    def sellable_q(self, prefix: str = "") -> Q:
        """A filter for sellable products; ``prefix`` reaches the product through a relation
        (``"target__"`` from a recommendation, ``"product__"`` from a purchase)."""
        return Q()

    def browsable_q(self, prefix: str = "") -> Q:
        """A filter for the products a widget may link to (a subclass leaves children out)."""
        return Q()

    def sellable_products(self) -> QuerySet[Model]:
        """The products a widget may show."""
        return self.products().filter(self.sellable_q())

    def category_q(self, category: str, prefix: str = "") -> Q:
        """A filter for the products whose :meth:`category_of` is ``category`` (no filter when
        the catalog has no categories)."""
        lookup = product_field("category")
        return Q(**{f"{prefix}{lookup}": category}) if lookup else Q()

    def column(self, role: str) -> str | None:
        """The name of a role's value in ``products().values(...)`` (``None``: not mapped)."""
        return product_field(role)

    def key_lookup(self) -> str | None:
        """The ORM lookup of the shop's product identifier (what the importer matches)."""
        return product_field("key")

    def search_fields(self) -> list[str]:
        """ORM lookups the admin searches products by (the name, then the key)."""
        return [f for f in (product_field("name"), self.key_lookup()) if f]

    def load(self, ids: Iterable[int]) -> dict[int, Model]:
        """The products with these primary keys, by primary key, in one query (plus one for
        their parents, attached so that :meth:`parent_of` costs nothing)."""
        loaded: dict[int, Model] = self.products().in_bulk(list({int(i) for i in ids}))
        return loaded

    # --- the Python side, on products loaded through products() or load() -------------------

    def read(self, product: Model, role: str, default: Any = None) -> Any:
        """One value of a role (``"name"``, ``"price"``...) of a loaded product."""
        return default

    def is_sellable(self, product: Model) -> bool:
        """Whether a loaded product may be shown (the rule of :meth:`sellable_q`)."""
        return True

    def price_of(self, product: Model) -> Decimal:
        """The product's price (zero when it has none)."""
        value = self.read(product, "price", None)
        if value is None:
            return Decimal("0")
        if isinstance(value, Decimal):
            return value
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return Decimal("0")

    def name_of(self, product: Model) -> str:
        """The product's name (its ``str`` when none is mapped)."""
        return str(self.read(product, "name", None) or product)

    def category_of(self, product: Model) -> str | None:
        """The product's one category path (category fallbacks and exclusions use it)."""
        value = self.read(product, "category")
        return str(value) if value else None

    def categories_of(self, product: Model) -> list[str]:
        """Every category path of the product (the one of :meth:`category_of` first)."""
        first = self.category_of(product)
        return [first] if first else []

    def categories_for(self, ids: Iterable[int] | None = None) -> dict[int, tuple[str, ...]]:
        """Every category path of several products at once (all products when ``ids`` is
        ``None``), by primary key, in one query: what :meth:`categories_of` says of each, for
        the exclusions. A product without a category is left out."""
        column = self.column("category")
        if not column:
            return {}
        qs = self.products().order_by()
        if ids is not None:
            wanted = sorted({int(i) for i in ids})
            if not wanted:
                return {}
            qs = qs.filter(pk__in=wanted)
        rows = qs.values_list("pk", column)
        return {int(pk): (str(cat),) for pk, cat in rows if cat is not None and cat != ""}

    def category_names(self, limit: int = 200) -> list[str]:
        """The category paths products have, sorted (the admin's category filter offers them)."""
        column = self.column("category")
        if not column:
            return []
        values = (
            self.products()
            .exclude(**{f"{column}__isnull": True})
            .exclude(**{column: ""})
            .order_by(column)
            .values_list(column, flat=True)
            .distinct()[:limit]
        )
        return [str(v) for v in values]

    def image_of(self, product: Model) -> str:
        """The product's image URL ("" when none)."""
        return str(self.read(product, "image", "") or "")

    def url_of(self, product: Model) -> str:
        """The product's page ("" when the model has no ``get_absolute_url``)."""
        url_of = getattr(product, "get_absolute_url", None)
        return str(url_of()) if callable(url_of) else ""

    def parent_of(self, product: Model) -> Model | None:
        """The product whose page shows this one (a variant's parent), or ``None``."""
        return None

    def browsable(self, product: Model) -> Model:
        """The product a widget shows for ``product``: its parent when it has one."""
        return self.parent_of(product) or product

    # --- the build's extraction -------------------------------------------------------------

    def content_rows(self) -> Iterator[ContentRow]:
        """``(pk, name, text, category, price)`` of every product, ordered by primary key, in
        one query (text values ``""`` when missing, price ``None``)."""
        for product in self.products().order_by("pk").iterator(chunk_size=10_000):
            price = self.read(product, "price")
            yield (
                int(product.pk),
                str(self.read(product, "name", "") or ""),
                str(self.read(product, "text", "") or ""),
                self.category_of(product) or "",
                None if price is None else self.price_of(product),
            )

    # --- money ------------------------------------------------------------------------------

    def format_money(self, amount: Decimal) -> str:
        """An amount as the shop shows money (``CROSSSELL_FORMAT_MONEY``)."""
        return str(money_formatter()(amount))


# --------------------------------------------------------------------------- the field mapping


@dataclass(frozen=True)
class Lookup:
    """A mapped lookup, analysed: does it cross a multi-valued relation, and where."""

    lookup: str
    multi: bool
    #: The lookup of the last multi-valued relation (``"categories"`` in ``categories__name``).
    relation: str = ""


@functools.cache
def analyse(model: type[Model], lookup: str) -> Lookup:
    """Whether ``lookup`` crosses a many-to-many or reverse foreign key of ``model``.

    Raises
    ------
    FieldDoesNotExist
        A part of the lookup is not a field (the system check reports it first).
    """
    opts: Any = model._meta
    relation = ""
    parts = lookup.split("__")
    for i, part in enumerate(parts):
        field = opts.get_field(part)
        if field.is_relation and (field.many_to_many or field.one_to_many):
            relation = "__".join(parts[: i + 1])
        if field.is_relation and field.related_model is not None:
            opts = field.related_model._meta
    return Lookup(lookup, bool(relation), relation)


class FieldCatalog(Catalog):
    """The default catalog: the fields named by ``CROSSSELL_PRODUCT_FIELDS``.

    A lookup may cross a multi-valued relation (``stockrecords__price``,
    ``categories__name``); each product still has one value per role, computed in the
    database by a correlated subquery (so the product query keeps one row per product):

    - ``price``: the lowest price among the related rows;
    - ``stock``: the sum of the related rows' stock (``None``, not tracked, when no row has
      one);
    - ``active``: true when any related row is;
    - ``name``, ``text``, ``category``, ``image``: the value of the related row with the lowest
      primary key (for ``categories__name``, the product's oldest category), rows without a
      value skipped;
    - ``key`` and ``parent`` may not cross one (system check ``crosssell.E030``).

    Those values are annotated on :meth:`products` (as ``crosssell_<role>``), so the Python
    side reads what the database filter compares.
    """

    def lookup(self, role: str) -> Lookup | None:
        """The analysed lookup of a role (``None``: not mapped)."""
        value = product_field(role)
        if not value:
            return None
        try:
            return analyse(self.model, value)
        except FieldDoesNotExist:
            return Lookup(value, False)  # reported by check crosssell.E013

    def multi_roles(self) -> list[str]:
        """The roles whose lookup crosses a multi-valued relation."""
        return [r for r in ROLES if (lk := self.lookup(r)) is not None and lk.multi]

    def expression(self, role: str) -> Any:
        """The one value of a multi-valued role, as a correlated subquery on the product."""
        found = self.lookup(role)
        if found is None or not found.multi:
            raise ValueError(f"the {role!r} role is not mapped through a multi-valued relation")
        base = self.model._base_manager.filter(pk=OuterRef("pk")).order_by()
        lookup = found.lookup
        if role == "active":
            return Exists(base.filter(**{lookup: True}))
        if role in ("price", "stock"):
            agg = Min(lookup) if role == "price" else Sum(lookup)
            return Subquery(base.values("pk").annotate(v=agg).values("v")[:1])
        # The related row with the lowest primary key: ordered by the relation's own key.
        first = base.filter(**{f"{lookup}__isnull": False}).order_by(f"{found.relation}__pk")
        return Subquery(first.values(lookup)[:1])

    def annotations(self, roles: Iterable[str] | None = None) -> dict[str, Any]:
        """``{"crosssell_<role>": expression}`` for the multi-valued roles (or those given)."""
        chosen = self.multi_roles() if roles is None else roles
        return {f"{ANNOTATION_PREFIX}{r}": self.expression(r) for r in chosen}

    def products(self) -> QuerySet[Model]:
        qs = super().products()
        extra = self.annotations()
        return qs.annotate(**extra) if extra else qs

    def column(self, role: str) -> str | None:
        found = self.lookup(role)
        if found is None:
            return None
        return f"{ANNOTATION_PREFIX}{role}" if found.multi else found.lookup

    def sellable_q(self, prefix: str = "") -> Q:
        q = Q()
        multi: list[str] = []
        for role in ("active", "price", "stock"):
            found = self.lookup(role)
            if found is None:
                continue
            if found.multi:
                multi.append(role)
            else:
                q &= _sellable_condition(role, f"{prefix}{found.lookup}")
        if multi:
            # The multi-valued roles compare their one value, computed in a subquery; a join
            # would compare any related row and repeat the product once per row.
            inner = Q()
            for role in multi:
                inner &= _sellable_condition(role, f"{ANNOTATION_PREFIX}{role}")
            ids = (
                self.model._base_manager.order_by()
                .annotate(**self.annotations(multi))
                .filter(inner)
                .values("pk")
            )
            q &= Q(**{f"{prefix}pk__in": ids})
        return q

    def category_q(self, category: str, prefix: str = "") -> Q:
        found = self.lookup("category")
        if found is None:
            return Q()  # no categories: the filter does not narrow anything
        if not found.multi:
            return Q(**{f"{prefix}{found.lookup}": category})
        column = f"{ANNOTATION_PREFIX}category"
        ids = (
            self.model._base_manager.order_by()
            .annotate(**self.annotations(["category"]))
            .filter(**{column: category})
            .values("pk")
        )
        return Q(**{f"{prefix}pk__in": ids})

    def load(self, ids: Iterable[int]) -> dict[int, Model]:
        loaded = super().load(ids)
        name = self._parent_name()
        if not name or not loaded:
            return loaded
        attname = self.model._meta.get_field(name).attname  # type: ignore[union-attr]
        wanted = {getattr(p, attname) for p in loaded.values()} - {None}
        if wanted:
            parents = {**loaded, **super().load(wanted - loaded.keys())}
            for product in loaded.values():
                parent_id = getattr(product, attname)
                if parent_id is not None and parent_id in parents:
                    # sets the relation's cache: parent_of() then reads it without a query
                    setattr(product, name, parents[parent_id])
        return loaded

    def read(self, product: Model, role: str, default: Any = None) -> Any:
        found = self.lookup(role)
        if found is None:
            return default
        value: Any
        if found.multi:
            name = f"{ANNOTATION_PREFIX}{role}"
            if name not in product.__dict__:
                # not loaded through products(): one query, then kept on the instance
                value = (
                    self.model._base_manager.filter(pk=product.pk)
                    .annotate(**{name: self.expression(role)})
                    .values_list(name, flat=True)
                    .first()
                )
                setattr(product, name, value)
            value = product.__dict__[name]
            return default if value is None else value
        value = product
        for part in found.lookup.split("__"):
            value = getattr(value, part, None)
            if value is None:
                return default
        return value

    def is_sellable(self, product: Model) -> bool:
        # The same three conditions as sellable_q, on the same values; a missing (NULL) value
        # fails a comparison in SQL, so it fails here too.
        if self.lookup("active") is not None and self.read(product, "active") is not True:
            return False
        if self.lookup("price") is not None:
            price = self.read(product, "price")
            if price is None or self.price_of(product) <= 0:
                return False
        stock = self.read(product, "stock")
        return stock is None or stock > 0

    def categories_of(self, product: Model) -> list[str]:
        found = self.lookup("category")
        if found is None or not found.multi:
            return super().categories_of(product)
        values = (
            self.model._base_manager.filter(pk=product.pk, **{f"{found.lookup}__isnull": False})
            .order_by(f"{found.relation}__pk")
            .values_list(found.lookup, flat=True)
        )
        return list(dict.fromkeys(str(v) for v in values if v))

    def categories_for(self, ids: Iterable[int] | None = None) -> dict[int, tuple[str, ...]]:
        found = self.lookup("category")
        if found is None or not found.multi:
            return super().categories_for(ids)
        # Every related row's value, in the order of categories_of (one query, one join).
        qs = self.model._base_manager.filter(**{f"{found.lookup}__isnull": False})
        if ids is not None:
            wanted = sorted({int(i) for i in ids})
            if not wanted:
                return {}
            qs = qs.filter(pk__in=wanted)
        rows = qs.order_by("pk", f"{found.relation}__pk").values_list("pk", found.lookup)
        out: dict[int, dict[str, None]] = {}
        for pk, value in rows:
            if value:
                out.setdefault(int(pk), {})[str(value)] = None
        return {pk: tuple(values) for pk, values in out.items()}

    def parent_of(self, product: Model) -> Model | None:
        name = self._parent_name()
        parent = getattr(product, name, None) if name else None
        return parent if isinstance(parent, Model) else None

    def _parent_name(self) -> str | None:
        """The parent role's foreign key on the product itself (a deeper lookup is ignored)."""
        found = self.lookup("parent")
        return found.lookup if found is not None and "__" not in found.lookup else None

    def content_rows(self) -> Iterator[ContentRow]:
        roles = ("name", "text", "category", "price")
        columns = [self.column(r) for r in roles]
        present = [c for c in columns if c]
        qs = self.products().order_by("pk").values_list("pk", *present)
        for row in qs.iterator(chunk_size=10_000):
            values = dict(zip(present, row[1:], strict=True))
            name, text, category, price = (values.get(c) if c else None for c in columns)
            yield (
                int(row[0]),
                "" if name is None else str(name),
                "" if text is None else str(text),
                "" if category is None else str(category),
                None if price is None else Decimal(str(price)),
            )


def _sellable_condition(role: str, lookup: str) -> Q:
    if role == "active":
        return Q(**{lookup: True})
    if role == "price":
        return Q(**{f"{lookup}__gt": 0})
    return Q(**{f"{lookup}__isnull": True}) | Q(**{f"{lookup}__gt": 0})


# --------------------------------------------------------------------------- configuration


@functools.cache
def _catalog(path: str) -> Catalog:
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"CROSSSELL_CATALOG = {path!r} cannot be imported: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Catalog)):
        raise ImproperlyConfigured(
            f"CROSSSELL_CATALOG = {path!r} must name a subclass of "
            "crosssell.services.catalog.Catalog."
        )
    return cls()


def get_catalog() -> Catalog:
    """The shop's catalog: an instance of the class named by ``CROSSSELL_CATALOG``."""
    return _catalog(str(settings.CATALOG))


def money_formatter() -> Callable[[Decimal], str]:
    """The callable named by ``CROSSSELL_FORMAT_MONEY`` (or the default)."""
    value = settings.FORMAT_MONEY
    if value is None:
        return default_format_money
    if callable(value):
        return value
    return _import_formatter(str(value))


@functools.cache
def _import_formatter(path: str) -> Callable[[Decimal], str]:
    try:
        func = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"CROSSSELL_FORMAT_MONEY = {path!r} cannot be imported: {exc}"
        ) from exc
    if not callable(func):
        raise ImproperlyConfigured(f"CROSSSELL_FORMAT_MONEY = {path!r} is not callable.")
    return func


def format_money(amount: Decimal | int | float | str) -> str:
    """``amount`` formatted by the catalog (``CROSSSELL_FORMAT_MONEY``)."""
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    return get_catalog().format_money(value)


__all__ = [
    "Catalog",
    "FieldCatalog",
    "Lookup",
    "analyse",
    "default_format_money",
    "format_money",
    "get_catalog",
    "money_formatter",
]
