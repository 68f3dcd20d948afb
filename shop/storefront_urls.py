"""The storefront's pages (namespace ``shop``)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from shop import views

app_name = "shop"

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("products/<int:pk>/", views.product_detail, name="product"),
    path("cart/", views.cart_detail, name="cart"),
    path("cart/add/", views.cart_add, name="cart-add"),
    path("cart/update/", views.cart_update, name="cart-update"),
    path("cart/remove/", views.cart_remove, name="cart-remove"),
    path("checkout/", views.checkout, name="checkout"),
    path("checkout/thanks/", views.thanks, name="thanks"),
    path(
        "account/login/",
        auth_views.LoginView.as_view(
            template_name="shop/login.html",
            next_page="shop:catalog",
            redirect_authenticated_user=True,
        ),
        name="login",
    ),
    path("account/logout/", auth_views.LogoutView.as_view(next_page="shop:catalog"), name="logout"),
]
