"""The app's settings: flat ``CROSSSELL_*`` names with their defaults in one dict, read lazily.

``from crosssell.conf import settings`` then ``settings.MIN_CUSTOMERS`` reads
``django.conf.settings.CROSSSELL_MIN_CUSTOMERS`` or its default; an unknown name raises
``AttributeError``, and ``override_settings`` works (a ``setting_changed`` receiver clears the
cache). Values are validated by system checks (``crosssell.checks``), not at import time.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver

PREFIX = "CROSSSELL_"

#: The fields the engine and the widgets read from the product model, as ORM lookups
#: (``"category__name"`` works for a foreign key). ``None`` means the model has no such field.
DEFAULT_PRODUCT_FIELDS: dict[str, str | None] = {
    "key": "sku",  # the shop's product identifier, matched by the importer's product_id
    "name": "name",
    "text": "description",
    "category": "category",
    "price": "price",
    "active": "is_active",
    "stock": "stock",
    "parent": "parent",
    "image": "image_url",
}

DEFAULTS: dict[str, Any] = {
    # The swappable product model, like AUTH_USER_MODEL (read with get_product_model()).
    "PRODUCT_MODEL": "crosssell.Product",
    "PRODUCT_FIELDS": DEFAULT_PRODUCT_FIELDS,
    # The class that reads the shop's products (dotted path to a subclass of
    # crosssell.services.catalog.Catalog); the default reads PRODUCT_FIELDS.
    "CATALOG": "crosssell.services.catalog.FieldCatalog",
    # How the widgets show money: a dotted path to (or a) callable (amount: Decimal) -> str;
    # None: Django's localised number with two decimals, no currency sign.
    "FORMAT_MONEY": None,
    # Privacy: a pair bought together by fewer distinct customers is never published.
    "MIN_CUSTOMERS": 3,
    # The key of the hash that makes a guest's email one identity (crosssell.services.identity);
    # None: derived from SECRET_KEY. Set it to keep identities when SECRET_KEY rotates.
    "IDENTITY_SECRET": None,
    # The lists a rebuild writes: "bought_together" (same order) and "also_bought" (same
    # customer, any order).
    "KINDS": ["bought_together", "also_bought"],
    # How many recommendations are stored per product and kind, and served by default.
    "LIST_LENGTH": 12,
    "DEFAULT_LIMIT": 4,
    "MAX_LIMIT": 50,
    # Keep a product's list within (low, high) times its price, e.g. (0.1, 1.5); None: no band.
    "PRICE_BAND": None,
    # The steps of the blend a rebuild serves, in order of preference (registry names or dotted
    # paths); None: the engine's tuned default. Popularity always closes the list.
    "STRATEGIES": None,
    # Products sold in at most this many orders are served by the trained neural model first
    # (when one has been trained: crosssell_retrain); None: never use it.
    "NEURAL_MAX_SALES": 2,
    # Builds kept for rollback besides the live one.
    "KEEP_BUILDS": 3,
    # Above this many products a rebuild runs as a Celery chord of shards.
    "SHARD_SIZE": 50_000,
    # Incremental updates: seconds a burst of orders is collected before one update per product.
    "INCREMENTAL_DELAY": 2.0,
    # Seconds a web process leaves the Celery broker alone after an attempt to queue an update
    # failed slowly, by a timeout (those checkouts' products stay pending for the periodic task
    # or the next rebuild), so a broker host that does not answer costs one checkout its connect
    # timeout, not each one. A refused connection is tried on every checkout. 0: never back off.
    "BROKER_BACKOFF": 30.0,
    # Seconds the rebuild lock lives without being refreshed (a killed worker's lock expires),
    # and how long a rebuild waits for the one before it to finish.
    "LOCK_TTL": 120,
    "LOCK_WAIT": 3600,
    "CACHE_ALIAS": "default",
    "CACHE_TIMEOUT": 3600,
    # Where trained model artifacts are stored (Django default storage).
    "MODEL_STORAGE_PREFIX": "crosssell/models",
    # The importer refuses files larger than this many bytes (compressed size).
    "IMPORT_MAX_BYTES": 2 * 1024**3,
    # Record impressions, clicks and add-to-carts of the widgets (crosssell.middleware).
    "TRACKING": True,
    # A web process holds the widgets' impressions until this many are waiting, or the oldest is
    # TRACKING_BATCH_SECONDS old (checked as a request ends), then sends them to Redis in one
    # push; a click, an add-to-cart or a purchase sends at once, and so does a graceful exit.
    # 1 sends at the end of every request.
    "TRACKING_BATCH": 200,
    "TRACKING_BATCH_SECONDS": 1.0,
    # Seconds within which an order line is attributed to the widget impression it came from.
    "ATTRIBUTION_WINDOW": 7 * 24 * 3600,
    # Where the widget's "add selected to cart" form posts: a URL name or a path ("" = no form).
    # The view receives one or more ``product_id`` values (and ``quantity``, default 1).
    "ADD_TO_CART_URL": "",
    # Each build (and each retraining) records offline metrics (HR@10, NDCG@10) of a copy of
    # its strategy fitted on 90% of the orders and asked about the other 10%.
    "OFFLINE_METRICS": True,
    # Each build tunes a few hyperparameters of the product-page strategy (cocount_content's
    # priors, or cocount's) and of the cart vectors (shrink, lift) on that same split: the best
    # validation NDCG@10 of a small grid is fitted and served when its gain is significant
    # (crosssell.engine.tuning; the build's admin page shows the chosen values beside the
    # defaults). False: the defaults.
    "TUNE": True,
    # Random seed of everything random in a build.
    "RANDOM_STATE": 42,
    # How many proxies in front of the site append to X-Forwarded-For: crosssell's throttles and
    # rate limits key on the address they vouch for. None: REST_FRAMEWORK["NUM_PROXIES"], and
    # when that is unset too, 0 (the header is never trusted; REMOTE_ADDR is the client).
    "NUM_PROXIES": None,
}


class CrosssellSettings:
    """Lazy access to ``CROSSSELL_*`` settings with defaults."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid crosssell setting: {name!r}")
        value = getattr(django_settings, PREFIX + name, DEFAULTS[name])
        if name == "PRODUCT_FIELDS":
            value = {**DEFAULT_PRODUCT_FIELDS, **value}
        self.__dict__[name] = value  # cache; cleared by the setting_changed receiver
        return value

    def change_setting(self, setting: str, value: Any, enter: bool, **kwargs: Any) -> None:
        if not setting.startswith(PREFIX):
            return
        self.__dict__.pop(setting[len(PREFIX) :], None)


settings = CrosssellSettings()


def get_product_model_string() -> str:
    """The ``app_label.ModelName`` of the product model, for foreign keys and migrations."""
    value: str = getattr(django_settings, "CROSSSELL_PRODUCT_MODEL", DEFAULTS["PRODUCT_MODEL"])
    return value


@receiver(setting_changed)
def _reload(signal: Any, sender: Any, setting: str, value: Any, enter: bool, **kwargs: Any) -> None:
    settings.change_setting(setting, value, enter)
