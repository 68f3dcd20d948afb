"""Settings of the sample shop.

Everything that differs between a laptop and production comes from the environment:

- ``DATABASE_URL`` (default: SQLite in ``db.sqlite3``) and ``REDIS_URL`` (default: none, which
  runs Celery tasks eagerly in the web process and caches in memory): the embedded default
  needs no server; with both set, PostgreSQL, Redis as broker and cache, and real workers.
- ``DJANGO_DEBUG``, ``DJANGO_SECRET_KEY``, ``DJANGO_ALLOWED_HOSTS`` for production.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab

import crosssell

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or (
    "django-insecure-sample-shop-only-for-local-development" if DEBUG else ""
)
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY when DJANGO_DEBUG=0.")
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
    if h.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "crosssell",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "crosssell.middleware.TrackingMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.cart",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=60, conn_health_checks=True
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "shop",
            "TIMEOUT": 3600,
            # A Redis that is down must cost a page milliseconds, not seconds: crosssell then
            # serves from the database. (The test script raises the read timeout: three suites
            # share two cores there, and a starved Redis is not a Redis that is down.)
            "OPTIONS": {
                "socket_connect_timeout": 0.25,
                "socket_timeout": float(os.environ.get("REDIS_SOCKET_TIMEOUT", "0.5")),
            },
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CELERY_TASK_ALWAYS_EAGER = True
    CELERY_TASK_EAGER_PROPAGATES = True

CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# An unacknowledged task (its worker was killed) is handed to another worker after this long.
# The socket timeouts keep a checkout from hanging on a Redis that accepts connections but never
# answers: the order is recorded and its update stays pending. (Above the worker's 1 s BRPOP.)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
    "socket_timeout": 3.0,
    "socket_connect_timeout": 1.0,
}
CELERY_RESULT_EXPIRES = 3600
# A checkout never waits long for a broker that is down: its order is recorded anyway and the
# pending update is caught up later.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_BROKER_CONNECTION_TIMEOUT = 1.0
# The schedule belongs to the project, not to the reusable app.
CELERY_BEAT_SCHEDULE = {
    "crosssell-nightly-rebuild": {
        "task": "crosssell.rebuild",
        "schedule": crontab(hour=3, minute=15),
    },
    "crosssell-flush-events": {"task": "crosssell.flush_events", "schedule": 10.0},
    # Catch up on incremental updates queued while the broker was down.
    "crosssell-pending-updates": {"task": "crosssell.process_pending", "schedule": 60.0},
    "crosssell-weekly-retrain": {
        "task": "crosssell.retrain_model",
        "schedule": crontab(hour=4, minute=0, day_of_week="sunday"),
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT", BASE_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
if DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}

LOGIN_URL = "shop:login"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("API_THROTTLE_ANON", "600/minute"),
        "user": os.environ.get("API_THROTTLE_USER", "1200/minute"),
        # The recommendation endpoints (a storefront calls them on every page).
        "crosssell": os.environ.get("API_THROTTLE_CROSSSELL", "600/minute"),
        # The storefront's impressions, clicks and add-to-carts, counted as they are written
        # (beyond the rate they are not recorded; the page is served as usual). Empty: no limit.
        "crosssell_storefront_address": os.environ.get("STOREFRONT_EVENTS_ADDRESS", "600/minute"),
        "crosssell_storefront_visitor": os.environ.get("STOREFRONT_EVENTS_VISITOR", "120/minute"),
    },
    # The proxies in front of the site that append to X-Forwarded-For (nginx, a load balancer):
    # the throttles key on the address they vouch for. 0: the header is ignored, REMOTE_ADDR is
    # the client. Unset, DRF would trust whatever header a client sends (crosssell.W040).
    "NUM_PROXIES": int(os.environ.get("DJANGO_NUM_PROXIES", "0")),
}
# The storefront's cart add and checkout (POST), per client address and per session; beyond
# the rate a request gets 429. "" switches a limit off.
SHOP_RATE_LIMITS = {
    "cart-add:address": os.environ.get("SHOP_RATE_CART_ADD_ADDRESS", "300/minute"),
    "cart-add:session": os.environ.get("SHOP_RATE_CART_ADD_SESSION", "60/minute"),
    "checkout:address": os.environ.get("SHOP_RATE_CHECKOUT_ADDRESS", "30/minute"),
    "checkout:session": os.environ.get("SHOP_RATE_CHECKOUT_SESSION", "10/minute"),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "crosssell API",
    "DESCRIPTION": "Frequently-bought-together and cross-sell recommendations.",
    "VERSION": crosssell.__version__,
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the sidecar package: the docs page works offline, with no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Production hardening, on whenever DEBUG is off.
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    CSRF_TRUSTED_ORIGINS = [
        o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o
    ]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"crosssell": {"handlers": ["console"], "level": "INFO"}},
}

# crosssell: the sample shop uses the app's own Product model (the default).
CROSSSELL_PRODUCT_MODEL = "crosssell.Product"
ABSOLUTE_URL_OVERRIDES = {"crosssell.product": lambda p: f"/products/{p.pk}/"}
CROSSSELL_ADD_TO_CART_URL = "shop:cart-add"
# The widgets show money as the shop's own pages do (its "money" filter: $1,234.50).
CROSSSELL_FORMAT_MONEY = "shop.templatetags.shop_tags.money"
CROSSSELL_MIN_CUSTOMERS = int(os.environ.get("CROSSSELL_MIN_CUSTOMERS", "3"))
CROSSSELL_SHARD_SIZE = int(os.environ.get("CROSSSELL_SHARD_SIZE", "50000"))
CROSSSELL_LOCK_TTL = int(os.environ.get("CROSSSELL_LOCK_TTL", "120"))
# Each rebuild tunes itself and measures its offline metrics (on by default; "0" turns off).
CROSSSELL_TUNE = os.environ.get("CROSSSELL_TUNE", "1") != "0"
CROSSSELL_OFFLINE_METRICS = os.environ.get("CROSSSELL_OFFLINE_METRICS", "1") != "0"
CROSSSELL_INCREMENTAL_DELAY = float(os.environ.get("CROSSSELL_INCREMENTAL_DELAY", "2"))
# First-party tracking of impressions, clicks and attributed orders (on unless "0").
CROSSSELL_TRACKING = os.environ.get("CROSSSELL_TRACKING", "1") != "0"
CROSSSELL_TRACKING_BATCH = int(os.environ.get("CROSSSELL_TRACKING_BATCH", "200"))
CROSSSELL_TRACKING_BATCH_SECONDS = float(os.environ.get("CROSSSELL_TRACKING_BATCH_SECONDS", "1"))
