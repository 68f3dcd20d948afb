from django.apps import AppConfig


class SwapshopConfig(AppConfig):
    name = "tests.swapshop"
    label = "swapshop"
    default_auto_field = "django.db.models.BigAutoField"
