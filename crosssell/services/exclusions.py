"""The merchant's exclusions (``Exclusion``): never this product or category with that one.

Used by the rebuild (excluded pairs are never written) and by serving (so a new exclusion takes
effect at once, before the next build); :func:`excluded_pairs` and its kin answer for products.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from crosssell.models import Exclusion
from crosssell.services import cache as cs_cache
from crosssell.services.catalog import get_catalog

#: A product's categories: one path ("" for none), or all of them.
Categories = str | Collection[str]


def _names(value: Categories) -> Collection[str]:
    if isinstance(value, str):
        return (value,) if value else ()
    return value


@dataclass(frozen=True)
class Rules:
    """Exclusions as sets of (source, target) keys: product ids and category names."""

    products: frozenset[tuple[int, int]]
    product_category: frozenset[tuple[int, str]]
    category_product: frozenset[tuple[str, int]]
    categories: frozenset[tuple[str, str]]

    def __bool__(self) -> bool:
        return bool(
            self.products or self.product_category or self.category_product or self.categories
        )

    @property
    def by_category(self) -> bool:
        """Whether some exclusion names a category (then products' categories are needed)."""
        return bool(self.product_category or self.category_product or self.categories)

    def excluded(self, src: int, src_cats: Categories, dst: int, dst_cats: Categories) -> bool:
        """Whether recommending ``dst`` with ``src`` is excluded.

        ``src_cats`` and ``dst_cats`` are the products' categories: one path, or every path of
        a product with several (an exclusion by category applies when any of them matches).
        """
        if (src, dst) in self.products:
            return True
        if not self.by_category:
            return False
        sources, targets = _names(src_cats), _names(dst_cats)
        return (
            any((src, c) in self.product_category for c in targets)
            or any((c, dst) in self.category_product for c in sources)
            or any((a, b) in self.categories for a in sources for b in targets)
        )


def load_rules(cached: bool = True) -> Rules:
    """Every exclusion, both directions where symmetric (cached per cache generation unless
    ``cached`` is false, as in a rebuild, which must see the very latest)."""

    def compute() -> Rules:
        pp: set[tuple[int, int]] = set()
        pc: set[tuple[int, str]] = set()
        cp: set[tuple[str, int]] = set()
        cc: set[tuple[str, str]] = set()
        rows = Exclusion.objects.values_list(
            "source_product_id", "source_category", "target_product_id", "target_category",
            "symmetric",
        )  # fmt: skip
        for sp_, sc, tp, tc, symmetric in rows:
            sides = [((sp_, sc), (tp, tc))]
            if symmetric:
                sides.append(((tp, tc), (sp_, sc)))
            for (a_p, a_c), (b_p, b_c) in sides:
                if a_p is not None and b_p is not None:
                    pp.add((a_p, b_p))
                elif a_p is not None:
                    pc.add((a_p, b_c))
                elif b_p is not None:
                    cp.add((a_c, b_p))
                else:
                    cc.add((a_c, b_c))
        return Rules(frozenset(pp), frozenset(pc), frozenset(cp), frozenset(cc))

    return cs_cache.get_or_set("exclusions", compute) if cached else compute()


def mask(
    rules: Rules,
    src: Sequence[int],
    src_cat: Sequence[Categories],
    dst: Sequence[int],
    dst_cat: Sequence[Categories],
) -> list[bool]:
    """For parallel sequences of pairs, ``True`` where the pair is excluded (each product's
    categories as :meth:`Rules.excluded` takes them)."""
    if not rules:
        return [False] * len(src)
    return [
        rules.excluded(a, ac, b, bc)
        for a, ac, b, bc in zip(src, src_cat, dst, dst_cat, strict=True)
    ]


def _categories(ids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """Every category of each product (one query; none when the catalog has no categories)."""
    wanted = {int(i) for i in ids}
    return get_catalog().categories_for(wanted) if wanted else {}


def excluded_pairs(source_ids: Iterable[int], target_ids: Iterable[int]) -> set[tuple[int, int]]:
    """The (source, target) pairs among ``source_ids`` x ``target_ids`` that an exclusion
    forbids (product or category on either side; symmetric ones both ways).

    Parameters
    ----------
    source_ids, target_ids
        Product primary keys (a product page's product or a cart's lines, and the candidates).

    Returns
    -------
    set of (int, int)
        Forbidden pairs (an exclusion by category applies when any of a product's categories
        matches). Costs one query for the products' categories (none when no exclusion names
        a category); the rules themselves are cached per cache generation.
    """
    sources = sorted({int(s) for s in source_ids})
    targets = sorted({int(t) for t in target_ids})
    rules = load_rules()
    if not rules or not sources or not targets:
        return set()
    cats = _categories([*sources, *targets]) if rules.by_category else {}
    return {
        (s, t)
        for s in sources
        for t in targets
        if s != t and rules.excluded(s, cats.get(s, ()), t, cats.get(t, ()))
    }


def excluded_targets(source_ids: Iterable[int], target_ids: Iterable[int]) -> set[int]:
    """The targets excluded with at least one of the sources (for a cart's list)."""
    return {t for _, t in excluded_pairs(source_ids, target_ids)}


def is_excluded(source_id: int, target_id: int) -> bool:
    """Whether an exclusion forbids recommending ``target_id`` with ``source_id``."""
    return bool(excluded_pairs([source_id], [target_id]))
