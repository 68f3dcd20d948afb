"""Serializers of the API: explicit fields in, explicit fields out."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from django.db.models import Model
from rest_framework import serializers
from rest_framework.fields import empty

from crosssell.conf import settings
from crosssell.services.ids import MAX_ID
from crosssell.services.products import price_of, products, read
from crosssell.services.serving import MAX_CART, Item


def limit_field(*, strict: bool) -> serializers.IntegerField:
    """The ``limit`` field, bounded by the current ``CROSSSELL_*`` settings."""
    field_class = StrictIntegerField if strict else QueryIntegerField
    return field_class(
        required=False,
        min_value=1,
        max_value=settings.MAX_LIMIT,
        default=settings.DEFAULT_LIMIT,
        help_text="How many products to return.",
    )


class StrictIntegerField(serializers.IntegerField):
    """An integer that must be a JSON number: ``"7"``, ``7.5`` and ``true`` are refused."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class QueryIntegerField(serializers.IntegerField):
    """An integer query parameter: ``?limit=`` is refused, not read as absent."""

    def get_value(self, dictionary: Mapping[str, Any]) -> Any:
        # DRF reads an empty form value of an optional field as missing; the schema says
        # integer, so an empty string is an invalid value here.
        return dictionary.get(self.field_name or "", empty)


class BoundedListField(serializers.ListField):
    """A list field that refuses an over-long list before validating its items one by one."""

    def to_internal_value(self, data: Any) -> list[Any]:
        if self.max_length is not None and isinstance(data, list) and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class LimitQuerySerializer(serializers.Serializer):
    """The ``limit`` query parameter."""

    def get_fields(self) -> dict[str, serializers.Field]:
        # Built per use so that the bounds follow the settings (and override_settings).
        return {"limit": limit_field(strict=False)}


#: A visitor id a storefront may name (``visitor``).
VISITOR_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
OTHER_VISITOR = "This visitor differs from the one the request's cookie names."
NOT_THIS_VISITOR = "This token was served to another visitor."


class VisitorQuerySerializer(serializers.Serializer):
    """The ``visitor`` query parameter of a storefront whose calls carry no cookie."""

    visitor = serializers.RegexField(
        VISITOR_PATTERN,
        required=False,
        help_text="With tracking on, for a storefront whose calls carry no cookie: the visitor "
        "the list is for (by default the `crosssell_visitor` cookie's; a different one is "
        "refused). It picks the visitor's variant, and the list's token serves it only.",
    )


class CartRequestSerializer(serializers.Serializer):
    """A cart: the products in it, and how many recommendations to return."""

    product_ids = BoundedListField(
        child=StrictIntegerField(min_value=1, max_value=MAX_ID),
        min_length=1,
        max_length=MAX_CART,
        help_text=f"The ids of the products in the cart (1 to {MAX_CART}).",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["limit"] = limit_field(strict=True)
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        ids = list(dict.fromkeys(attrs["product_ids"]))
        known = set(products().filter(pk__in=ids).values_list("pk", flat=True))
        if not known:
            raise serializers.ValidationError({"product_ids": ["None of these products exists."]})
        # Unknown ids are kept out of the sources but stay excluded: a product deleted while it
        # sat in the cart is still never recommended back.
        attrs["product_ids"] = ids
        attrs["known_ids"] = [pk for pk in ids if pk in known]
        return attrs


class RecommendationSerializer(serializers.Serializer):
    """One recommended product."""

    id = serializers.IntegerField(help_text="The product's primary key.")
    name = serializers.CharField()
    price = serializers.DecimalField(
        max_digits=None, decimal_places=None, coerce_to_string=True, help_text="A decimal string."
    )
    url = serializers.CharField(
        allow_null=True, help_text="The product's page (get_absolute_url), or null."
    )
    score = serializers.FloatField(
        required=False,
        help_text="The strategy's score (0 for a fallback); like the evidence, only for users "
        "with the view permission on recommendations (a co-count strategy's score is a count).",
    )
    strategy = serializers.CharField(
        help_text='What produced it: "cocount", "pinned", "bestsellers"...'
    )
    evidence = serializers.DictField(
        required=False,
        help_text="Only for users with the view permission on recommendations: co-purchase "
        "count, confidence, lift, customers.",
    )

    def to_representation(self, instance: Item | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(instance, Item):
            instance = self.flatten(instance)
        return super().to_representation(instance)

    def flatten(self, item: Item) -> dict[str, Any]:
        """The fields of one item, read through the product field mapping."""
        product, slot = item.product, item.slot
        row: dict[str, Any] = {
            "id": product.pk,
            "name": str(read(product, "name", str(product))),
            "price": price_of(product),
            "url": product_url(product),
            "strategy": slot.strategy,
        }
        if self.context.get("show_evidence"):
            # A non-finite score would make the response invalid JSON.
            row["score"] = slot.score if math.isfinite(slot.score) else 0.0
            row["evidence"] = slot.evidence
        return row


def product_url(product: Model) -> str | None:
    """``product.get_absolute_url()`` when the model has one, else ``None``."""
    get_url = getattr(product, "get_absolute_url", None)
    return str(get_url()) if callable(get_url) else None


class RecommendationListSerializer(serializers.Serializer):
    """The recommendations of one request, and the build they come from."""

    results = RecommendationSerializer(many=True)
    build = serializers.IntegerField(
        allow_null=True, help_text="The id of the live build, or null when none is live yet."
    )
    impression = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="With tracking on: this list's signed impression token. Post it to "
        "`events/` as an `impression` when the list is shown, and with a `product_id` as a "
        "`click` or an `add_to_cart`; null when tracking is off.",
    )


EVENT_TYPES = ("impression", "click", "add_to_cart")
MAX_EVENTS = 50


class EventSerializer(serializers.Serializer):
    """One event of a headless storefront."""

    type = serializers.ChoiceField(choices=EVENT_TYPES)
    impression = serializers.CharField(
        min_length=1,
        trim_whitespace=False,
        max_length=4000,
        help_text="The `impression` token of the list the event is about.",
    )
    product_id = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="For a click or an add_to_cart: the product, one the list showed.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        from crosssell.services import tracking

        data = tracking.read_token(attrs["impression"])
        if data is None:
            raise serializers.ValidationError(
                {"impression": ["Not a valid impression token (forged, or older than the "
                                "attribution window)."]}
            )  # fmt: skip
        if attrs["type"] == "impression":
            if "l" not in data:
                raise serializers.ValidationError(
                    {"impression": ["This token's impression was recorded when it was rendered."]}
                )
        elif "product_id" not in attrs:
            raise serializers.ValidationError({"product_id": ["Required for a click or an "
                                                             "add_to_cart."]})  # fmt: skip
        elif attrs["product_id"] not in tracking.token_products(data):
            raise serializers.ValidationError(
                {"product_id": ["This list did not show this product."]}
            )
        attrs["token"] = data
        return attrs


class EventsRequestSerializer(serializers.Serializer):
    """A batch of events (impressions, clicks, add-to-carts) from a headless storefront."""

    events = BoundedListField(
        child=EventSerializer(), min_length=1, max_length=MAX_EVENTS,
        help_text=f"1 to {MAX_EVENTS} events.",
    )  # fmt: skip
    visitor = serializers.RegexField(
        VISITOR_PATTERN,
        required=False,
        help_text="A stable, anonymous visitor id, for a storefront whose calls carry no cookie "
        "(by default the visitor's `crosssell_visitor` cookie; a different one is refused). "
        "Every token must have been served to this visitor.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The visitor the request acts as (``holder``); every token served to it."""
        from crosssell.services import tracking

        request = self.context.get("request")
        request = getattr(request, "_request", request)
        holder = tracking.acting_as(request, attrs.get("visitor"))
        if holder is None:
            raise serializers.ValidationError({"visitor": [OTHER_VISITOR]})
        attrs["holder"] = holder
        if not settings.TRACKING:
            return attrs
        visitor = tracking.current_visitor(holder)
        foreign = {
            str(i): {"impression": [NOT_THIS_VISITOR]}
            for i, event in enumerate(attrs["events"])
            if visitor is None or tracking.read_token(event["impression"], visitor) is None
        }
        if foreign:
            raise serializers.ValidationError({"events": foreign})
        return attrs


class EventsAcceptedSerializer(serializers.Serializer):
    """How many events were queued."""

    accepted = serializers.IntegerField()


class ErrorDetailSerializer(serializers.Serializer):
    """An error without a field: not found, not signed in, throttled..."""

    detail = serializers.CharField()
