"""Receivers: a merchant's exclusion takes effect at once (a new cache generation)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from crosssell.models import Exclusion
from crosssell.services import cache as cs_cache


@receiver([post_save, post_delete], sender=Exclusion)
def exclusion_changed(sender: Any, **kwargs: Any) -> None:
    transaction.on_commit(cs_cache.bump)
