"""``manage.py crosssell_customer export|erase CUSTOMER``: a customer's data rights."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Export (as JSON) or erase what crosssell holds about one customer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["export", "erase"])
        parser.add_argument("customer", help="The customer reference (the user's primary key).")
        parser.add_argument("--yes", action="store_true", help="Erase without asking.")

    def handle(self, *args: Any, **options: Any) -> None:
        from crosssell.services.customers import erase_customer, export_customer

        customer = options["customer"].strip()
        if not customer:
            raise CommandError("Give a customer reference.")
        if options["action"] == "export":
            self.stdout.write(json.dumps(export_customer(customer), indent=2))
            return
        if not options["yes"] and options.get("interactive", True):
            answer = input(f"Erase every purchase of customer {customer!r}? [y/N] ")
            if answer.strip().lower() not in {"y", "yes"}:
                raise CommandError("Nothing erased.")
        deleted = erase_customer(customer)
        self.stdout.write(
            self.style.SUCCESS(
                f"Erased {deleted} order line(s) of customer {customer!r}; the next rebuild "
                "forgets them."
            )
        )
