"""Thin views: validate the input, call one service, serialize the items."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crosssell.api.parsers import SafeJSONParser
from crosssell.api.serializers import (
    MAX_ID,
    CartRequestSerializer,
    ErrorDetailSerializer,
    LimitQuerySerializer,
    RecommendationListSerializer,
)
from crosssell.api.throttling import SCOPE, CrosssellRateThrottle
from crosssell.models import user_customer_ref
from crosssell.services import for_you, serving
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


class RecommendationView(APIView):
    """The common parts: throttle scope, and the response envelope."""

    permission_classes = [AllowAny]
    throttle_classes = [CrosssellRateThrottle]
    throttle_scope = SCOPE

    def respond(self, request: Request, items: list[Item]) -> Response:
        """The items in the envelope, with the evidence for staff users only."""
        user = getattr(request, "user", None)
        data = RecommendationListSerializer(
            {"results": items, "build": serving.live_build_id()},
            context={"request": request, "show_evidence": bool(user and user.is_staff)},
        ).data
        return Response(data)

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
        product = None
        # The route takes any segment so that a malformed id gets the API's JSON 404.
        if product_id.isascii() and product_id.isdigit() and 0 < int(product_id) <= MAX_ID:
            product = sellable_products().filter(pk=int(product_id)).first()
        if product is None:
            raise NotFound("No such product, or it is not for sale.")
        items = serving.recommend([int(product.pk)], limit, category=serving.category_of(product))
        return self.respond(request, items)


class CartRecommendationsView(RecommendationView):
    """Products to add to a cart; never one already in it."""

    parser_classes = [SafeJSONParser]

    @extend_schema(
        operation_id="crosssell_cart_recommendations",
        summary="Recommendations for a cart",
        tags=TAGS,
        request=CartRequestSerializer,
        responses={
            200: RecommendationListSerializer,
            400: BAD_REQUEST,
            403: FORBIDDEN,
            415: OpenApiResponse(ErrorDetailSerializer, description="The body is not JSON."),
            429: THROTTLED,
        },
    )
    def post(self, request: Request) -> Response:
        cart = CartRequestSerializer(data=request.data)
        cart.is_valid(raise_exception=True)
        data: dict[str, Any] = cart.validated_data
        items = serving.recommend(data["known_ids"], data["limit"], exclude=data["product_ids"])
        return self.respond(request, items)


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
