"""The tiny shop of the widget tests (``test_templatetags``, ``test_widget_cache``).

Not a test module: test modules import their shared helpers from here, never from each other.
Products are made through ``crosssell.testing.make_product``, so the shop also works with a
swapped product model (``tests.settings_swapped``).
"""

from __future__ import annotations

from django.core.cache import cache
from django.db.models import Model

from crosssell.models import Purchase
from crosssell.services.build import rebuild
from crosssell.testing import make_product

#: The name (``data-crosssell``) of the "frequently bought together" widget.
FBT = "frequently-bought-together"


class Shop:
    """A tiny shop with known co-purchases.

    ``main`` is bought with ``b`` (6 customers), ``c`` (5), ``d`` (4) and ``gone`` (6, but it is
    inactive); with ``rare`` by 2 customers only (under the privacy threshold of 3). ``others``
    sell on their own (bestsellers); ``fresh`` has no sales at all.
    """

    def __init__(self) -> None:
        self.main = make_product("Camera", category="Photo > Cameras", price="500.00")
        self.b = make_product("Memory card", category="Photo > Memory cards", price="20.00")
        self.c = make_product("Camera bag", category="Photo > Bags", price="45.50")
        self.d = make_product("Battery", category="Photo > Batteries", price="30.00")
        self.gone = make_product("Old strap", category="Photo > Straps", active=False)
        self.rare = make_product("Lens cap", category="Photo > Lenses", price="9.00")
        self.others = [
            make_product(f"Coffee {i}", category="Coffee > Beans", price="12.00") for i in range(8)
        ]
        self.fresh = make_product("New tripod", category="Photo > Tripods", price="80.00")
        rows: list[Purchase] = []
        n = 0

        def order(customer: str, *products: Model) -> None:
            nonlocal n
            n += 1
            rows.extend(
                Purchase(order_ref=f"O{n}", customer_ref=customer, product_id=p.pk)
                for p in products
            )

        for k, partner in ((6, self.b), (5, self.c), (4, self.d), (6, self.gone)):
            for i in range(k):
                order(f"cust-{partner.pk}-{i}", self.main, partner)
        for i in range(2):
            order(f"rare-{i}", self.main, self.rare)
        for j, p in enumerate(self.others):
            for i in range(10 - j):
                order(f"coffee-{j}-{i}", p)
        Purchase.objects.bulk_create(rows)
        rebuild(trigger="test")
        cache.clear()

    def sellable_ids(self) -> set[int]:
        return {int(p.pk) for p in [self.main, self.b, self.c, self.d, self.rare, self.fresh]} | {
            int(p.pk) for p in self.others
        }
