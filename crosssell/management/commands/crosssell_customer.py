"""``manage.py crosssell_customer export|erase [CUSTOMER] [--email E]``: data rights."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Export (as JSON) or erase what crosssell holds about one customer: order lines, "
        "impressions and events; an erasure also corrects the live lists at once and lets the "
        "shop erase its own rows (the crosssell.signals.customer_erased signal)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["export", "erase"])
        parser.add_argument(
            "customer",
            nargs="?",
            default="",
            help="The customer reference (the user's primary key).",
        )
        parser.add_argument(
            "--email", default="", help="The customer's email: their guest orders go too."
        )
        parser.add_argument("--yes", action="store_true", help="Erase without asking.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Erase even when the event queue (Redis) cannot be flushed first; the events "
            "still queued there are written once Redis is back and are not erased.",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=None,
            help="Seconds to wait for a running rebuild (default CROSSSELL_LOCK_WAIT).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from crosssell.services.customers import (
            Customer,
            EventQueueUnavailable,
            erase_customer,
            export_customer,
        )
        from crosssell.services.locks import LockTimeout

        try:
            who = Customer(ref=options["customer"], email=options["email"])
        except ValueError as exc:
            raise CommandError("Give a customer reference, an --email, or both.") from exc
        if options["action"] == "export":
            self.stdout.write(json.dumps(export_customer(who), indent=2))
            return
        named = " and ".join(
            part for part in (who.ref and repr(who.ref), who.email and "that email") if part
        )
        if not options["yes"] and options.get("interactive", True):
            answer = input(f"Erase everything crosssell holds about customer {named}? [y/N] ")
            if answer.strip().lower() not in {"y", "yes"}:
                raise CommandError("Nothing erased.")
        try:
            erased = erase_customer(who, wait=options["wait"], force=options["force"])
        except LockTimeout as exc:
            raise CommandError(f"A rebuild is running; nothing erased ({exc}).") from exc
        except EventQueueUnavailable as exc:
            raise CommandError(f"Nothing erased: {exc} (--force to erase anyway).") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Erased {erased.purchases} order line(s) in {len(erased.orders)} order(s) of "
                f"customer {named}, {erased.events} event(s) and {erased.impressions} "
                f"impression(s) of {len(erased.visitors)} visitor(s); "
                f"{erased.rows_recounted} recommendation(s) recounted, {erased.rows_dropped} "
                f"dropped, {len(erased.builds_dropped)} kept build(s) dropped. "
                "Every list has forgotten them."
            )
        )
