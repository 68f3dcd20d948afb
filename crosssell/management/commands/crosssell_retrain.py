"""``manage.py crosssell_retrain``: train the neural strategy from the order history."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Train the TensorFlow recommender on every purchase and store it as the current "
        "artifact; the next rebuild blends it in. Needs the [deep] extra."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--async", dest="run_async", action="store_true", help="Queue it.")
        parser.add_argument("--max-steps", type=int, help="Cap the training steps.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["run_async"]:
            from crosssell.tasks import retrain_model

            self.stdout.write(f"Retraining queued as task {retrain_model.delay().id}.")
            return
        from crosssell.services.neural import retrain

        params = {"verbose": options["verbosity"] > 1}
        if options["max_steps"]:
            params["max_steps"] = options["max_steps"]
        try:
            meta = retrain(**params)
        except ImportError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Neural model {meta['version']} trained on {meta['n_items']} products in "
                f"{meta['retrain_seconds']:.1f}s (final loss {meta.get('final_loss')}). "
                "Run crosssell_rebuild to publish its recommendations."
            )
        )
