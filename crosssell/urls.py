"""The app's URLs: include them under any prefix (``path("", include("crosssell.urls"))``)."""

app_name = "crosssell"

urlpatterns: list = []
