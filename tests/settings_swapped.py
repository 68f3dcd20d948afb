"""crosssell installed in a shop with its own product model (``swapshop.Item``)."""

from shop.settings import *  # noqa: F403
from shop.settings import DATABASES, INSTALLED_APPS, TEMPLATES

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "shop"] + ["tests.swapshop"]
ROOT_URLCONF = "tests.urls_swapped"
TEMPLATES[0]["OPTIONS"]["context_processors"] = [
    p for p in TEMPLATES[0]["OPTIONS"]["context_processors"] if not p.startswith("shop.")
]
CROSSSELL_PRODUCT_MODEL = "swapshop.Item"
CROSSSELL_PRODUCT_FIELDS = {
    "key": "code",
    "name": "title",
    "text": "blurb",
    "category": "department",
    "price": "amount",
    "active": "listed",
    "stock": None,
    "parent": None,
    "image": None,
}
ABSOLUTE_URL_OVERRIDES: dict[str, object] = {}
CROSSSELL_FORMAT_MONEY = None  # Django's localised number: this shop sets no formatter
CELERY_BEAT_SCHEDULE: dict[str, object] = {}
# `make test` runs this suite beside the main one (scripts/test-all.sh): a test database of its own.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_swapped"}
