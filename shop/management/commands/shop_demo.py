"""``manage.py shop_demo``: fill the sample shop with a believable catalog and order history."""

from __future__ import annotations

import sys
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from crosssell.models import Product, Recommendation
from crosssell.services.build import rebuild
from shop import demo


class Command(BaseCommand):
    """Generate the demo shop, then run the first rebuild."""

    help = (
        "Fill the sample shop with products in categories, customers and months of orders with "
        "real co-purchase structure, then compute the first recommendations."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when the shop has products."
        )
        parser.add_argument(
            "--reset", action="store_true", help="Delete the shop's products and orders first."
        )
        parser.add_argument("--products", type=int, default=400, help="About how many products.")
        parser.add_argument("--orders", type=int, default=6000, help="How many orders.")
        parser.add_argument(
            "--seed", type=int, default=7, help="Random seed (same seed, same shop)."
        )
        parser.add_argument(
            "--no-rebuild", action="store_true", help="Skip the first recommendation build."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        existing = Product.objects.count()
        if existing and options["if_empty"]:
            self.stdout.write(f"The shop already has {existing} products: nothing to do.")
            return
        if existing and not options["reset"]:
            raise CommandError(
                f"The shop already has {existing} products. Use --reset to replace them with "
                "the demo data, or --if-empty to skip."
            )
        if options["products"] < 30:
            raise CommandError("--products must be at least 30.")
        if options["orders"] < 0:
            raise CommandError("--orders cannot be negative.")
        started = time.perf_counter()
        if existing:
            demo.clear_shop()
        bars: dict[str, tqdm[Any]] = {}

        def progress(stage: str, done: int, total: int) -> None:
            bar = bars.get(stage)
            if bar is None:
                bar = bars[stage] = tqdm(total=total, desc=stage, file=sys.stderr, leave=False)
            bar.update(done - bar.n)

        summary = demo.generate(
            options["products"], options["orders"], options["seed"], progress=progress
        )
        for bar in bars.values():
            bar.close()
        w = self.stdout.write
        w(
            f"Created {summary.products} products in {summary.categories} categories, "
            f"{summary.customers} customers, {summary.orders} orders ({summary.lines} lines)."
        )
        w(
            f"{summary.without_sales} products have no sales yet; inactive: "
            f"{', '.join(summary.inactive) or '-'}; out of stock: "
            f"{', '.join(summary.out_of_stock) or '-'}."
        )
        if settings.DEBUG:
            self._demo_admin()
        if options["no_rebuild"]:
            w("Skipped the first build (run `manage.py crosssell_rebuild` or use the admin).")
        else:
            build = rebuild(trigger="demo")
            fbt = Recommendation.objects.filter(
                build=build, kind=Recommendation.Kind.BOUGHT_TOGETHER
            )
            from_sales = fbt.filter(evidence__co_count__gt=0).count()
            w(
                f"Build #{build.pk} is live: {fbt.count()} recommendations "
                f"({from_sales} from co-purchases that passed the privacy threshold)."
            )
        w(self.style.SUCCESS(f"Demo shop ready in {time.perf_counter() - started:.1f}s."))

    def _demo_admin(self) -> None:
        User = get_user_model()
        if User.objects.filter(username="admin").exists():
            return
        user = User.objects.create_superuser("admin", "admin@example.com", "admin")
        user.first_name, user.last_name = "Demo", "Admin"
        user.save(update_fields=["first_name", "last_name"])
        demo.give_history(user.pk)
        self.stdout.write(
            self.style.WARNING(
                "DEBUG is on: created the superuser admin / admin (for the demo only)."
            )
        )
