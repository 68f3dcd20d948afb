"""Oscar's products as crosssell reads them.

``CROSSSELL_CATALOG = "crosssell.contrib.oscar.catalog.OscarCatalog"``.

Oscar keeps no price on the product: the shop's pricing strategy picks a stock record and a tax
policy (``partner.strategy``). The Python side asks that strategy, exactly as Oscar's product
page does (``purchase_info_for_product``): the price shown is the price including tax when the
tax is known, else excluding tax; a product is sellable when it is public, has a price and is
available to buy. The database filter approximates the same rule for Oscar's default strategies
(the first stock record by primary key, stock required when the product class tracks stock);
serving always checks the loaded products with the strategy, so what is shown agrees with Oscar.

Categories come from Oscar's tree: every public category of the product (a child's are its
parent's), each as its full path (``Books > Fiction``). A child (a size, a colour) is shown as
its parent, the product customers browse.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from django.conf import settings as django_settings
from django.db.models import Exists, F, Model, OuterRef, Prefetch, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from oscar.core.loading import get_class, get_model

from crosssell.conf import settings as cs_settings
from crosssell.services import cache as cs_cache
from crosssell.services.catalog import Catalog

STANDALONE, PARENT, CHILD = "standalone", "parent", "child"
#: The roles that are plain columns of Oscar's product.
COLUMNS = {
    "key": "upc",
    "name": "title",
    "text": "description",
    "active": "is_public",
    "parent": "parent",
}


class Price(Decimal):
    """An amount with the currency of the stock record it comes from (the strategy's choice),
    so that :meth:`OscarCatalog.format_money` writes it as Oscar's product page does.

    Adding prices keeps the currency when they share one (a bundle's total); prices of
    different currencies add up to a plain amount, written in ``OSCAR_DEFAULT_CURRENCY``.
    """

    currency: str

    def __new__(cls, value: Any = "0", currency: str = "") -> Price:
        made = super().__new__(cls, value)
        made.currency = currency
        return made

    def _keep(self, total: Any, other: Any) -> Any:
        if not isinstance(total, Decimal):
            return total  # NotImplemented
        found = {c for c in (self.currency, getattr(other, "currency", "")) if c}
        return Price(total, found.pop()) if len(found) == 1 else Decimal(total)

    def __add__(self, other: Any) -> Any:
        return self._keep(Decimal.__add__(self, other), other)

    def __radd__(self, other: Any) -> Any:
        return self._keep(Decimal.__radd__(self, other), other)


def strategy() -> Any:
    """The shop's strategy for a visitor without a request (Oscar's ``Selector().strategy()``),
    which is what a cached widget can show to everyone."""
    selector = get_class("partner.strategy", "Selector")
    return selector().strategy()


def purchase_info(product: Any, using: Any = None) -> Any:
    """Oscar's ``PurchaseInfo`` (price, availability, stock record) for a product, as its own
    ``purchase_info_for_product`` template tag computes it."""
    chosen = using or strategy()
    if product.is_parent:
        return chosen.fetch_for_parent(product)
    return chosen.fetch_for_product(product)


def shown_price(price: Any) -> Decimal | None:
    """The amount Oscar's product page shows for a price policy: including tax when the tax is
    known, else excluding it; ``None`` when the product has no price."""
    if not getattr(price, "exists", False):
        return None
    amount = price.incl_tax if price.is_tax_known else price.excl_tax
    return None if amount is None else Decimal(amount)


def category_paths() -> dict[int, tuple[str, bool]]:
    """Every category's full path (``Books > Fiction``) and whether it is browsable (it and its
    ancestors public), by id; one query, cached per cache generation."""

    def compute() -> dict[int, tuple[str, bool]]:
        category = get_model("catalogue", "Category")
        sep = getattr(category, "_full_name_separator", " > ")
        step = int(category.steplen)
        rows = list(
            category.objects.order_by("path").values_list(
                "pk", "path", "name", "is_public", "ancestors_are_public"
            )
        )
        names = {path: name for _, path, name, _, _ in rows}
        out: dict[int, tuple[str, bool]] = {}
        for pk, path, _, public, ancestors_public in rows:
            parts = [names.get(path[: step * i], "") for i in range(1, len(path) // step + 1)]
            out[int(pk)] = (sep.join(p for p in parts if p), bool(public and ancestors_public))
        return out

    return cs_cache.get_or_set("oscar:category_paths", compute, local=True)


class OscarCatalog(Catalog):
    """django-oscar's catalogue, partner stock records and pricing strategy."""

    # --- querysets ------------------------------------------------------------------------
    def products(self) -> QuerySet[Model]:
        stockrecord = get_model("partner", "StockRecord")
        product = self.model
        # The strategy's "first" stock record must be the same one the database filter reads.
        records = stockrecord.objects.order_by("pk")
        return (
            product._default_manager.select_related(
                "parent", "product_class", "parent__product_class"
            )
            .prefetch_related(
                Prefetch("stockrecords", queryset=records),
                Prefetch(
                    "children",
                    queryset=product._default_manager.filter(is_public=True)
                    .order_by("pk")
                    .prefetch_related(Prefetch("stockrecords", queryset=records)),
                    to_attr="_prefetched_public_children",
                ),
                "images",
                "parent__images",
                "categories",
                "parent__categories",
            )
            .order_by("pk")
        )

    def _first_record_ok(self, product_ref: Any) -> Exists:
        """The product's first stock record has a price and stock (or the class tracks none)."""
        stockrecord = get_model("partner", "StockRecord")
        # (OuterRef here is the stock record below: the first record of the same product.)
        first = (
            stockrecord.objects.filter(product=OuterRef("product_id")).order_by("pk").values("pk")
        )[:1]
        untracked = Q(product__product_class__track_stock=False) | Q(
            product__parent__product_class__track_stock=False
        )
        ok = (
            stockrecord.objects.filter(product=product_ref, pk=first, price__isnull=False)
            .annotate(net=F("num_in_stock") - Coalesce(F("num_allocated"), Value(0)))
            .filter(untracked | Q(net__gt=0))
        )
        return Exists(ok)

    def sellable_q(self, prefix: str = "") -> Q:
        product = self.model
        ref = OuterRef(f"{prefix}pk")
        own = self._first_record_ok(ref)
        child_ok = Exists(
            product._default_manager.filter(parent=ref, is_public=True).filter(
                self._first_record_ok(OuterRef("pk"))
            )
        )
        return (
            Q(**{f"{prefix}is_public": True})
            & ~Q(**{f"{prefix}structure": CHILD, f"{prefix}parent__is_public": False})
            & (
                (Q(**{f"{prefix}structure": PARENT}) & Q(child_ok))
                | (~Q(**{f"{prefix}structure": PARENT}) & Q(own))
            )
        )

    def browsable_q(self, prefix: str = "") -> Q:
        return Q(**{f"{prefix}parent__isnull": True})

    def load(self, ids: Iterable[int]) -> dict[int, Model]:
        return self.products().in_bulk([int(i) for i in ids])

    def category_q(self, category: str, prefix: str = "") -> Q:
        ids = [pk for pk, (path, public) in category_paths().items() if public and path == category]
        link = get_model("catalogue", "ProductCategory")
        own = Exists(link.objects.filter(product=OuterRef(f"{prefix}pk"), category_id__in=ids))
        parents = Exists(
            link.objects.filter(product=OuterRef(f"{prefix}parent_id"), category_id__in=ids)
        )
        return Q(own) | Q(parents)

    def key_lookup(self) -> str | None:
        return "upc"

    def search_fields(self) -> list[str]:
        return ["title", "upc"]

    def column(self, role: str) -> str | None:
        # Price, stock, category and image are not columns of Oscar's product.
        return COLUMNS.get(role)

    # --- one loaded product -----------------------------------------------------------------
    def _info(self, product: Model) -> Any:
        cached = getattr(product, "_crosssell_purchase_info", None)
        if cached is None:
            cached = purchase_info(product)
            product._crosssell_purchase_info = cached  # type: ignore[attr-defined]
        return cached

    def is_sellable(self, product: Model) -> bool:
        p: Any = product
        if not p.is_public or (p.is_child and p.parent is not None and not p.parent.is_public):
            return False
        info = self._info(product)
        return shown_price(info.price) is not None and bool(info.availability.is_available_to_buy)

    def price_of(self, product: Model) -> Decimal:
        """The price Oscar shows, as a :class:`Price` carrying its stock record's currency."""
        amount = shown_price(self._info(product).price) or Decimal("0")
        return Price(amount, self.currency_of(product))

    def currency_of(self, product: Model) -> str:
        """The currency of the product's price (its stock record's, as the strategy chose it;
        ``OSCAR_DEFAULT_CURRENCY`` when it has none)."""
        price = self._info(product).price
        default = getattr(django_settings, "OSCAR_DEFAULT_CURRENCY", "")
        return str(getattr(price, "currency", None) or default)

    def name_of(self, product: Model) -> str:
        return str(product.get_title() or "")  # type: ignore[attr-defined]

    def text_of(self, product: Model) -> str:
        p: Any = product
        text = p.description or (p.parent.description if p.is_child and p.parent else "")
        return str(text or "")

    def categories_of(self, product: Model) -> list[str]:
        p: Any = product
        owner = p.parent if p.is_child and p.parent is not None else p
        paths = category_paths()
        found = []
        for category in sorted(owner.categories.all(), key=lambda c: c.pk):
            path, public = paths.get(int(category.pk), ("", False))
            if public and path and path not in found:
                found.append(path)
        return found

    def category_of(self, product: Model) -> str | None:
        found = self.categories_of(product)
        return found[0] if found else None

    def categories_for(self, ids: Iterable[int] | None = None) -> dict[int, tuple[str, ...]]:
        """Every public category path of each product, as :meth:`categories_of` (a child's
        are its parent's), in one query over Oscar's ``ProductCategory``."""
        qs = self.model._default_manager.order_by()
        if ids is not None:
            wanted = sorted({int(i) for i in ids})
            if not wanted:
                return {}
            qs = qs.filter(pk__in=wanted)
        # A child has no categories of its own in Oscar: its parent's are joined instead.
        linked = qs.filter(Q(categories__isnull=False) | Q(parent__categories__isnull=False))
        columns = ("pk", "structure", "categories__pk", "parent__categories__pk")
        rows: Any = linked.values_list(*columns)
        found: dict[int, set[int]] = {}
        for pk, structure, own, inherited in rows:
            category = inherited if structure == CHILD else own
            if category is not None:
                found.setdefault(int(pk), set()).add(int(category))
        paths = category_paths()
        out: dict[int, tuple[str, ...]] = {}
        for pk, categories in found.items():
            names: list[str] = []
            for category in sorted(categories):
                path, public = paths.get(category, ("", False))
                if public and path and path not in names:
                    names.append(path)
            if names:
                out[pk] = tuple(names)
        return out

    def category_names(self, limit: int = 200) -> list[str]:
        """The public paths of Oscar's category tree, sorted."""
        names = {path for path, public in category_paths().values() if public and path}
        return sorted(names)[:limit]

    def image_of(self, product: Model) -> str:
        image = product.primary_image()  # type: ignore[attr-defined]
        original = getattr(image, "original", None) if image else None
        try:
            return str(original.url) if original else ""
        except ValueError:  # a file field without a file
            return ""

    def parent_of(self, product: Model) -> Model | None:
        p: Any = product
        return p.parent if p.is_child else None

    def read(self, product: Model, role: str, default: Any = None) -> Any:
        p: Any = product
        value: Any
        if role == "key":
            value = p.upc
        elif role == "name":
            value = self.name_of(product)
        elif role == "text":
            value = self.text_of(product)
        elif role == "category":
            value = self.category_of(product)
        elif role == "price":
            value = shown_price(self._info(product).price)
        elif role == "active":
            value = p.is_public
        elif role == "stock":
            record = self._info(product).stockrecord
            value = record.net_stock_level if record is not None else None
        elif role == "parent":
            value = self.parent_of(product)
        elif role == "image":
            value = self.image_of(product)
        else:
            return super().read(product, role, default)
        return default if value is None or value == "" else value

    # --- extraction ---------------------------------------------------------------------
    def content_rows(self) -> Iterator[tuple[int, str, str, str, Decimal | None]]:
        """One row per product: the first category path is the row's category (the content
        features weigh each of its levels); the product's other paths follow its description
        in the text, so that look-alike products are found through every category."""
        chosen = strategy()
        for product in self.products().iterator(chunk_size=2000):
            p: Any = product
            p._crosssell_purchase_info = purchase_info(product, chosen)
            paths = self.categories_of(product)
            text = "\n".join(t for t in [self.text_of(product), *paths[1:]] if t)
            yield (
                int(p.pk),
                self.name_of(product),
                text,
                paths[0] if paths else "",
                shown_price(p._crosssell_purchase_info.price),
            )

    # --- money --------------------------------------------------------------------------
    def format_money(self, amount: Decimal) -> str:
        """Oscar's ``currency`` filter (Babel, ``OSCAR_CURRENCY_FORMAT``) in the currency of
        the amount's stock record (a :class:`Price` from :meth:`price_of`), else
        ``OSCAR_DEFAULT_CURRENCY``; unless ``CROSSSELL_FORMAT_MONEY`` names another formatter."""
        if cs_settings.FORMAT_MONEY is not None:
            return super().format_money(amount)
        from oscar.templatetags.currency_filters import currency

        return str(currency(amount, getattr(amount, "currency", None) or None))
