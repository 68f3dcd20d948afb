"""Thin views: validate the input, call one service, serialize the items."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crosssell.api import event_limits
from crosssell.api.parsers import SafeJSONParser
from crosssell.api.serializers import (
    OTHER_VISITOR,
    CartRequestSerializer,
    ErrorDetailSerializer,
    EventsAcceptedSerializer,
    EventsRequestSerializer,
    LimitQuerySerializer,
    RecommendationListSerializer,
    VisitorQuerySerializer,
)
from crosssell.api.throttling import SCOPE, CrosssellRateThrottle
from crosssell.conf import settings
from crosssell.models import Variant, user_customer_ref
from crosssell.permissions import can_see_evidence
from crosssell.services import cache as cs_cache
from crosssell.services import for_you, serving, tracking, widgets
from crosssell.services.ids import parse_id
from crosssell.services.products import sellable_products
from crosssell.services.serving import Item

TAGS = ["crosssell"]
BAD_REQUEST = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="Invalid input: each field with the reasons it was refused.",
    examples=[
        OpenApiExample(
            "limit too large",
            value={"limit": ["Ensure this value is less than or equal to 50."]},
            response_only=True,
            status_codes=["400"],
        )
    ],
)
THROTTLED = OpenApiResponse(ErrorDetailSerializer, description="Too many requests.")
FORBIDDEN = OpenApiResponse(
    ErrorDetailSerializer,
    description="Not allowed (for a session-authenticated POST: the CSRF token is missing).",
)

NOT_JSON = OpenApiResponse(ErrorDetailSerializer, description="The body is not JSON.")


def post_responses(status: int, body: Any) -> dict[int, Any]:
    """The documented answers of a JSON POST endpoint."""
    return {status: body, 400: BAD_REQUEST, 403: FORBIDDEN, 415: NOT_JSON, 429: THROTTLED}


class RecommendationView(APIView):
    """The common parts: throttle scope, and the response envelope."""

    permission_classes = [AllowAny]
    throttle_classes = [CrosssellRateThrottle]
    throttle_scope = SCOPE

    def respond(self, request: Request, items: list[Item]) -> Response:
        """The items in the envelope, with the evidence for users who may see it."""
        return Response(self.payload(request, items))

    def payload(
        self, request: Request, items: list[Item], build: int | None = None
    ) -> dict[str, Any]:
        """The envelope as plain data (cacheable)."""
        data = RecommendationListSerializer(
            {"results": items, "build": build or serving.live_build_id()},
            context={"request": request, "show_evidence": shows_evidence(request)},
        ).data
        return {"results": [dict(r) for r in data["results"]], "build": data["build"]}

    @staticmethod
    def visitor(request: Request) -> Any:
        """The visitor the list is for (a ``tracking.visitor_id`` holder): the cookie's, or the
        one a cookie-less storefront names with ``?visitor=`` (400 when the two differ)."""
        held = getattr(request, "_crosssell_holder", None)
        if held is None:
            query = VisitorQuerySerializer(data=request.query_params)
            query.is_valid(raise_exception=True)
            held = tracking.acting_as(request._request, query.validated_data.get("visitor"))
            if held is None:
                raise ValidationError({"visitor": [OTHER_VISITOR]})
            request._crosssell_holder = held  # type: ignore[attr-defined]
        return held

    def holder(self, request: Request) -> Any | None:
        """What carries the visitor for :func:`crosssell.services.widgets.serve` (tracking
        on), else ``None``."""
        return self.visitor(request) if settings.TRACKING else None

    def with_impression(
        self,
        request: Request,
        payload: dict[str, Any],
        placement: str,
        sources: list[int],
        variant: Variant | None,
    ) -> dict[str, Any]:
        """The payload with a fresh impression token (tracking on), for the client to post to
        ``events/`` when it shows the list: an API call may be a prefetch, so the impression
        is not recorded here. The token serves this visitor only."""
        if not settings.TRACKING:
            return {**payload, "impression": None}
        results = payload["results"]
        token = tracking.sign(
            str(uuid.uuid4()),
            variant.pk if variant else None,
            [r["id"] for r in results],
            visitor=tracking.visitor_id(self.visitor(request)),
            l=placement,
            s=sources,
            t=[r["strategy"] for r in results],
        )
        return {**payload, "impression": token}

    def limit(self, request: Request) -> int:
        """The validated ``limit`` query parameter (400 with the reason otherwise)."""
        query = LimitQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit: int = query.validated_data["limit"]
        return limit


class FrequentlyBoughtTogetherView(RecommendationView):
    """Products frequently bought together with one product."""

    @extend_schema(
        operation_id="crosssell_frequently_bought_together",
        summary="Frequently bought together with a product",
        tags=TAGS,
        parameters=[
            OpenApiParameter(
                "product_id",
                OpenApiTypes.INT64,
                OpenApiParameter.PATH,
                description="The product's primary key.",
            ),
            LimitQuerySerializer,
            VisitorQuerySerializer,
        ],
        responses={
            200: RecommendationListSerializer,
            400: BAD_REQUEST,
            404: OpenApiResponse(
                ErrorDetailSerializer, description="No such product, or it is not for sale."
            ),
            429: THROTTLED,
        },
    )
    def get(self, request: Request, product_id: str) -> Response:
        limit = self.limit(request)
        # The route takes any segment so that a malformed id gets the API's JSON 404.
        parsed = parse_id(product_id)
        if parsed is None:
            raise NotFound(NOT_FOR_SALE)
        pk = parsed
        evidence = shows_evidence(request)

        def compute(assignment: widgets.Assignment) -> dict[str, Any] | None:
            product = sellable_products().filter(pk=pk).first()
            if product is None:
                return None
            build = assignment.build_id
            category = serving.category_of(product)
            items = serving.recommend([pk], limit, category=category, build_id=build)
            return self.payload(request, items, build)

        # The envelope is cached per cache generation (a build, a pin, a product change start
        # a new one) and per variant's build, as the widgets are: a hot product costs no query.
        key = f"api:fbt:{pk}:{limit}:{int(evidence)}"
        served = widgets.serve("product", self.holder(request), key, compute)
        payload = served.value
        if payload is None:
            raise NotFound(NOT_FOR_SALE)
        if served.holdout:
            payload = {**payload, "results": []}  # the holdout sees no recommendations
        return Response(self.with_impression(request, payload, "product", [pk], served.variant))


NOT_FOR_SALE = "No such product, or it is not for sale."


def shows_evidence(request: Request) -> bool:
    """The evidence is for users with the view permission on recommendations, not all staff."""
    return can_see_evidence(getattr(request, "user", None))


class CartRecommendationsView(RecommendationView):
    """Products to add to a cart; never one already in it."""

    parser_classes = [SafeJSONParser]

    @extend_schema(
        operation_id="crosssell_cart_recommendations",
        summary="Recommendations for a cart",
        tags=TAGS,
        request=CartRequestSerializer,
        responses=post_responses(200, RecommendationListSerializer),
    )
    def post(self, request: Request) -> Response:
        cart = CartRequestSerializer(data=request.data)
        cart.is_valid(raise_exception=True)
        data: dict[str, Any] = cart.validated_data

        def compute() -> dict[str, Any]:
            items = serving.recommend(data["known_ids"], data["limit"], exclude=data["product_ids"])
            return self.payload(request, items)

        # The envelope is cached per cache generation, as the FBT endpoint's: a warm cart costs
        # the serializer's check of its products, and nothing more.
        sources = ",".join(map(str, sorted(data["known_ids"])))
        excluded = ",".join(map(str, sorted(data["product_ids"])))
        key = f"api:cart:{sources}:{excluded}:{data['limit']}:{int(shows_evidence(request))}"
        return Response(cs_cache.get_or_set(key, compute, local=True))


class MyRecommendationsView(RecommendationView):
    """Recommendations for the signed-in customer, from their own purchases only."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="crosssell_my_recommendations",
        summary="Recommendations for the signed-in customer",
        tags=TAGS,
        parameters=[LimitQuerySerializer],
        responses={
            200: RecommendationListSerializer,
            400: BAD_REQUEST,
            401: OpenApiResponse(ErrorDetailSerializer, description="Not signed in."),
            403: OpenApiResponse(
                ErrorDetailSerializer, description="Not signed in (session authentication)."
            ),
            429: THROTTLED,
        },
    )
    def get(self, request: Request) -> Response:
        limit = self.limit(request)
        # The customer comes from the session only: no parameter can name another customer.
        items = for_you.recommend_for_customer(user_customer_ref(request.user), limit)
        return self.respond(request, items)


class EventsView(APIView):
    """Impressions, clicks and add-to-carts from a headless storefront's JavaScript."""

    permission_classes = [AllowAny]
    throttle_classes = [CrosssellRateThrottle]
    throttle_scope = SCOPE
    parser_classes = [SafeJSONParser]

    @extend_schema(
        operation_id="crosssell_events",
        summary="Record impressions, clicks and add-to-carts",
        description=(
            "Each event carries the `impression` token of a list this API returned. An "
            "`impression` records the list as shown (posting it twice records it once); a "
            "`click` or an `add_to_cart` names the `product_id` (one the list showed) and is "
            "credited to the list at checkout, within the attribution window. The events are "
            "queued and written in bulk; nothing is recorded when any event is invalid. A token "
            "counts only for the visitor it was served to (the cookie's, or the `visitor` a "
            "cookie-less storefront names on both calls); an impression counts one click and "
            "one add-to-cart however often it is posted. Limited per address and per visitor "
            "(429 with the reason)."
        ),
        tags=TAGS,
        request=EventsRequestSerializer,
        responses=post_responses(202, EventsAcceptedSerializer),
    )
    def post(self, request: Request) -> Response:
        event_limits.check_address(request)
        body = EventsRequestSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        if not settings.TRACKING:
            return Response({"accepted": 0}, status=202)
        holder = body.validated_data["holder"]  # the visitor every token was served to
        visitor = tracking.visitor_id(holder)
        event_limits.check_visitor(visitor)
        impressions = []
        for event in body.validated_data["events"]:
            data = event["token"]
            if event["type"] == "impression":
                impressions.append(
                    tracking.impression_event(
                        str(data["l"]), visitor, data.get("s", []), data["p"], data.get("t", []),
                        data.get("v"), impression=data["i"],
                    )
                )  # fmt: skip
            else:
                tracking.record_touch(holder, event["impression"], event["type"],
                                      event["product_id"])  # fmt: skip
        tracking.push(impressions)
        return Response({"accepted": len(body.validated_data["events"])}, status=202)
