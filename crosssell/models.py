"""The data: the (swappable) product, the order lines, the builds and their recommendations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.apps import apps as django_apps
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from crosssell.conf import get_product_model_string

if TYPE_CHECKING:
    from datetime import timedelta


def get_product_model() -> type[models.Model]:
    """The product model of this shop, as named by ``CROSSSELL_PRODUCT_MODEL``."""
    name = get_product_model_string()
    try:
        return django_apps.get_model(name, require_ready=False)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"CROSSSELL_PRODUCT_MODEL must be of the form 'app_label.ModelName', not {name!r}."
        ) from exc
    except LookupError as exc:
        raise ImproperlyConfigured(
            f"CROSSSELL_PRODUCT_MODEL refers to model {name!r} that has not been installed."
        ) from exc


class AbstractProduct(models.Model):
    """The fields crosssell reads, for a shop that has no product model of its own."""

    sku = models.CharField("SKU", max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(
        max_length=200, blank=True, db_index=True, help_text='A path such as "Photo > Cameras".'
    )
    price = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    is_active = models.BooleanField(default=True)
    stock = models.PositiveIntegerField(
        null=True, blank=True, help_text="Units in stock; empty when stock is not tracked."
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="variants",
        help_text="The product this one is a variant of (size, colour).",
    )
    image_url = models.URLField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        abstract = True
        ordering = ["name"]
        indexes = [models.Index(fields=["is_active", "category"])]

    def __str__(self) -> str:
        return self.name

    @property
    def is_sellable(self) -> bool:
        return bool(self.is_active and self.price > 0 and (self.stock is None or self.stock > 0))


class Product(AbstractProduct):
    """The default product model; replace it with ``CROSSSELL_PRODUCT_MODEL``."""

    class Meta(AbstractProduct.Meta):
        swappable = "CROSSSELL_PRODUCT_MODEL"
        verbose_name = "product"


class Purchase(models.Model):
    """One order line as crosssell sees it."""

    order_ref = models.CharField("order", max_length=64)
    customer_ref = models.CharField(
        "customer",
        max_length=64,
        blank=True,
        default="",
        help_text="The shop's customer id (the user's primary key); empty for a guest.",
    )
    # Who the line counts as for the privacy threshold (crosssell.services.identity): "u:" and
    # the customer, "e:" and a guest's email key, or "o:" and the order. Empty on rows a shop
    # inserted itself (the database default serves its SQL): they count by customer_ref, else
    # by order, the same rule in SQL.
    identity = models.CharField(
        max_length=80, blank=True, default="", db_default="", editable=False
    )
    email_key = models.CharField(
        max_length=64,
        blank=True,
        default="",
        db_default="",
        editable=False,
        help_text="HMAC-SHA256 of the order's normalised email; never the email itself.",
    )
    product = models.ForeignKey(
        get_product_model_string(), on_delete=models.CASCADE, related_name="crosssell_purchases"
    )
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    purchased_at = models.DateTimeField(null=True, blank=True, default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["order_ref", "product"], name="crosssell_purchase_one_line_per_product"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="crosssell_purchase_quantity_positive"
            ),
        ]
        indexes = [
            models.Index(fields=["customer_ref"], name="crosssell_purchase_customer"),
            models.Index(fields=["identity"], name="crosssell_purchase_identity"),
            models.Index(
                fields=["email_key"], condition=~Q(email_key=""), name="crosssell_purchase_email"
            ),
            models.Index(fields=["product", "order_ref"], name="crosssell_purchase_product"),
            models.Index(fields=["purchased_at"], name="crosssell_purchase_time"),
        ]

    def __str__(self) -> str:
        return f"{self.order_ref}: {self.quantity} x {self.product_id}"


class Build(models.Model):
    """One recomputation of the recommendations; exactly one is live at a time."""

    class State(models.TextChoices):
        RUNNING = "running", "running"
        READY = "ready", "ready"
        LIVE = "live", "live"
        FAILED = "failed", "failed"

    #: The trigger of a build that an experiment variant is served from (services.variants).
    VARIANT_TRIGGER = "variant"

    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    trigger = models.CharField(max_length=32, default="manual")
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    variant = models.ForeignKey(
        "crosssell.Variant",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="builds",
        help_text="The experiment variant this build was computed for (services.variants).",
    )
    lock_token = models.CharField(
        max_length=64,
        blank=True,
        default="",
        db_default="",  # rows inserted by raw SQL (benchmarks/rebuild.py) get one too
        help_text="The rebuild lock a chord's shards resume (services.distributed).",
    )
    counts = models.JSONField(default=dict, blank=True, help_text="Data size and output counts.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Offline metrics.")
    progress = models.JSONField(default=dict, blank=True, help_text="Stage, percent, rows.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = "created_at"
        constraints = [
            models.UniqueConstraint(
                fields=["state"], condition=Q(state="live"), name="crosssell_one_live_build"
            ),
        ]

    def __str__(self) -> str:
        return f"Build #{self.pk} ({self.state})"

    @classmethod
    def live(cls) -> Build | None:
        """The live build (at most one is), or ``None`` before the first publish."""
        return cls.objects.filter(state=cls.State.LIVE).first()

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.created_at if self.finished_at else None


class Recommendation(models.Model):
    """Target is recommended with source; rows with no build are the merchant's own decisions."""

    class Kind(models.TextChoices):
        BOUGHT_TOGETHER = "bought_together", "frequently bought together"
        ALSO_BOUGHT = "also_bought", "customers also bought"
        SIMILAR = "similar", "similar products"

    class Status(models.TextChoices):
        AUTO = "auto", "automatic"
        PINNED = "pinned", "pinned"
        REJECTED = "rejected", "rejected"

    # Derived rows, written a million at a time by a build: the references are kept by Django
    # (a deleted product or build takes its rows with it, ``on_delete=CASCADE``), not by
    # database constraints, whose per-row checks cost a full rebuild as much as the write
    # itself. A build only writes ids it read from the product table in the same run.
    source = models.ForeignKey(
        get_product_model_string(),
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
    )
    target = models.ForeignKey(
        get_product_model_string(),
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
    )
    kind = models.CharField(max_length=32, choices=Kind.choices, default=Kind.BOUGHT_TOGETHER)
    score = models.FloatField(default=0.0)
    rank = models.PositiveSmallIntegerField(default=0)
    strategy = models.CharField(max_length=64, default="manual")
    evidence = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.AUTO)
    build = models.ForeignKey(
        Build,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="recommendations",
        db_constraint=False,
        db_index=False,  # the serving index starts with the build
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "source", "rank"]
        constraints = [
            models.UniqueConstraint(
                fields=["build", "kind", "source", "target"],
                condition=Q(build__isnull=False),
                name="crosssell_rec_unique_in_build",
            ),
            models.UniqueConstraint(
                fields=["kind", "source", "target"],
                condition=Q(build__isnull=True),
                name="crosssell_rec_unique_curated",
            ),
            models.CheckConstraint(
                condition=~Q(source=models.F("target")), name="crosssell_rec_not_itself"
            ),
        ]
        indexes = [
            models.Index(fields=["build", "kind", "source", "rank"], name="crosssell_rec_serving"),
            models.Index(
                fields=["kind", "source", "status"],
                condition=Q(build__isnull=True),
                name="crosssell_rec_curated",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source_id} -> {self.target_id} ({self.kind}, {self.status})"


class CartVector(models.Model):
    """One product's cart vector in one build: its best companions and their weights, packed.

    The cart widget sums its products' vectors (:mod:`crosssell.engine.cart`): one compact row
    per product and build, read for a whole cart in one indexed query and written by ``COPY``
    beside the build's recommendations. ``terms`` packs the companions best first, each a
    product id (int64), its weight (float32) and the distinct customers who bought both
    (int32), little-endian (``crosssell.services.cart_store.TERM_DTYPE``). Deleted with its
    build or its product.
    """

    build = models.ForeignKey(
        Build,
        on_delete=models.CASCADE,
        related_name="cart_vectors",
        db_constraint=False,  # written 100k at a time by a build, as Recommendation
        db_index=False,  # the unique (build, product) index starts with the build
    )
    product = models.ForeignKey(
        get_product_model_string(),
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    terms = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["build", "product"], name="crosssell_cart_vector_unique"
            )
        ]

    def __str__(self) -> str:
        return f"cart vector of {self.product_id} in build #{self.build_id}"


class Exclusion(models.Model):
    """Never recommend the target side with the source side (a product or a whole category).

    Applied both ways by default, when building and when serving.
    """

    source_product = models.ForeignKey(
        get_product_model_string(),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    source_category = models.CharField(max_length=200, blank=True)
    target_product = models.ForeignKey(
        get_product_model_string(),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    target_category = models.CharField(max_length=200, blank=True)
    symmetric = models.BooleanField(default=True, help_text="Also exclude the other direction.")
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(source_product__isnull=False) | ~Q(source_category=""))
                & (Q(target_product__isnull=False) | ~Q(target_category="")),
                name="crosssell_exclusion_has_both_sides",
            ),
        ]

    def __str__(self) -> str:
        left = self.source_product or f"category {self.source_category}"
        right = self.target_product or f"category {self.target_category}"
        return f"never {right} with {left}"


class PendingUpdate(models.Model):
    """A product whose lists wait for an incremental update (written in the checkout's transaction,
    so an order's update survives a broker that is down)."""

    product_id = models.BigIntegerField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"pending update of product {self.product_id}"


class CacheGeneration(models.Model):
    """The cache generation of a cache that each process keeps to itself (local memory).

    Shared caches (Redis) hold the generation themselves; a local-memory cache cannot, or a
    command's bump (a rebuild, an erasure) would never reach the web processes
    (``crosssell.services.cache``).
    """

    name = models.CharField(max_length=64, primary_key=True, help_text="The cache alias.")
    value = models.CharField(max_length=32)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"cache generation {self.value} of {self.name}"


class Experiment(models.Model):
    """An A/B test of recommendation variants on a placement."""

    name = models.CharField(max_length=100, unique=True)
    placement = models.CharField(
        max_length=32,
        default="",
        blank=True,
        help_text="The widget placement it runs on (product, cart...); empty: every placement.",
    )
    is_active = models.BooleanField(default=True)
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["placement"],
                condition=Q(is_active=True),
                name="crosssell_one_active_experiment_per_placement",
            )
        ]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    """One arm of an experiment: a strategy (or the live build), or no widget at all.

    A variant naming a strategy is served from a build of its own (``build``, computed by
    :func:`crosssell.services.variants.build_variant` and never made live), so the arms of an
    experiment compare whole lists, not slots filtered out of one blend.
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=64)
    strategy = models.CharField(
        max_length=64,
        blank=True,
        help_text=(
            "A strategy name (popularity, cocount, blend...) or a dotted path to a class; "
            "served from a build of its own. Empty: the live blend."
        ),
    )
    holdout = models.BooleanField(default=False, help_text="Show no widget (the control).")
    weight = models.PositiveIntegerField(default=1, help_text="Share of the traffic.")
    build = models.ForeignKey(
        Build,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="variants",
        help_text="the build this variant serves; empty: the live build",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="crosssell_variant_name"),
            models.CheckConstraint(condition=Q(weight__gte=1), name="crosssell_variant_weight"),
        ]
        ordering = ["experiment", "pk"]

    def __str__(self) -> str:
        return f"{self.experiment}: {self.name}"

    def clean(self) -> None:
        """A strategy must be one a build can run: a registry name or an importable dotted path
        to a class that ranks items for items (a customer strategy cannot fill these lists).

        Checked here rather than at build time, so a typo shows in the admin's form instead of
        as a failed build at night. A holdout shows no widget, so it needs no strategy.
        """
        super().clean()
        name = self.strategy = self.strategy.strip()
        if not name:
            return
        from crosssell.engine import registry
        from crosssell.engine.base import ItemRecommender

        try:
            # The class only: instantiating "neural" would import TensorFlow into the web process.
            cls = registry.strategy_class(name)
        except KeyError:
            known = ", ".join(registry.available_strategies())
            raise ValidationError(
                {"strategy": f"Unknown strategy {name!r}: use one of {known}, or a dotted path."}
            ) from None
        except (ImportError, ValueError, TypeError) as exc:
            raise ValidationError({"strategy": f"Strategy {name!r} cannot be used: {exc}"}) from exc
        if not issubclass(cls, ItemRecommender):
            raise ValidationError(
                {"strategy": f"{name!r} ranks items for customers, not for products or carts."}
            )


class Impression(models.Model):
    """One rendered list: where, what, for whom (a visitor id, never a name)."""

    id = models.UUIDField(primary_key=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    placement = models.CharField(max_length=32)
    visitor = models.CharField(max_length=64, db_index=True)
    variant = models.ForeignKey(Variant, null=True, blank=True, on_delete=models.SET_NULL)
    sources = models.JSONField(default=list, help_text="The product(s) the list was for.")
    products = models.JSONField(default=list, help_text="The products shown, in order.")
    strategies = models.JSONField(default=list, help_text="The strategy of each slot.")

    class Meta:
        indexes = [models.Index(fields=["variant", "created_at"], name="crosssell_impr_variant")]

    def __str__(self) -> str:
        return f"{self.placement} impression {self.id}"


class Event(models.Model):
    """A click, an add-to-cart or an attributed purchase that came from an impression."""

    class Type(models.TextChoices):
        CLICK = "click", "click"
        ADD_TO_CART = "add_to_cart", "add to cart"
        PURCHASE = "purchase", "purchase"

    id = models.UUIDField(primary_key=True, editable=False)
    type = models.CharField(max_length=16, choices=Type.choices)
    impression = models.ForeignKey(
        Impression, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    variant = models.ForeignKey(Variant, null=True, blank=True, on_delete=models.SET_NULL)
    visitor = models.CharField(max_length=64, db_index=True)
    product_id = models.BigIntegerField()
    order_ref = models.CharField(max_length=64, blank=True)
    quantity = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["order_ref", "product_id"],
                condition=Q(type="purchase"),
                name="crosssell_event_one_attribution_per_line",
            )
        ]
        indexes = [models.Index(fields=["variant", "type"], name="crosssell_event_variant")]

    def __str__(self) -> str:
        return f"{self.type} of {self.product_id}"


def product_field(name: str) -> str | None:
    """The ORM lookup of a mapped product field (``CROSSSELL_PRODUCT_FIELDS``)."""
    from crosssell.conf import settings

    value: str | None = settings.PRODUCT_FIELDS.get(name)
    return value


def user_customer_ref(user: Any) -> str:
    """The customer reference recorded for a signed-in user: its primary key."""
    return str(user.pk) if user is not None and getattr(user, "is_authenticated", False) else ""


__all__ = [
    "AbstractProduct",
    "Build",
    "CacheGeneration",
    "CartVector",
    "Event",
    "Exclusion",
    "Experiment",
    "Impression",
    "PendingUpdate",
    "Product",
    "Purchase",
    "Recommendation",
    "Variant",
    "get_product_model",
    "product_field",
    "user_customer_ref",
]
