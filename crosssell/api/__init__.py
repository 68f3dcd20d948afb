"""The REST API (Django REST framework); the only package of crosssell that imports DRF."""
