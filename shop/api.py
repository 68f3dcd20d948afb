"""A bare product endpoint: the same product as the recommendations API, with no
recommendations. The serving benchmark measures the widget's cost against it."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crosssell.services.products import sellable_products


class ProductSerializer(serializers.Serializer[Any]):
    """A product as the recommendations API shows it."""

    id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    price = serializers.DecimalField(max_digits=10, decimal_places=2)
    url = serializers.CharField(source="get_absolute_url")


class ProductView(APIView):
    """One sellable product."""

    permission_classes = [AllowAny]
    serializer_class = ProductSerializer

    @extend_schema(
        operation_id="shop_product",
        summary="One product, without recommendations",
        responses={200: ProductSerializer, 404: OpenApiResponse(description="No such product.")},
    )
    def get(self, request: Request, pk: int) -> Response:
        product = sellable_products().filter(pk=pk).first()
        if product is None:
            raise NotFound("No such product, or it is not for sale.")
        return Response(ProductSerializer(product).data)
