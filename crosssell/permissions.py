"""Who may see what: the recommendations' evidence (customers, lift, co-counts) is for the
users the admin lets view recommendations."""

from __future__ import annotations

from typing import Any

#: Either permission opens the recommendations' changelist, where the evidence is shown, so
#: either one shows it elsewhere too (the admin's rule: who may change may view).
EVIDENCE_PERMISSIONS = ("crosssell.view_recommendation", "crosssell.change_recommendation")


def can_see_evidence(user: Any) -> bool:
    """Whether ``user`` (or ``None``) may see how many customers bought a pair, its lift and
    its co-purchase count. Being staff is not enough."""
    if user is None or not getattr(user, "is_active", False):
        return False
    return any(user.has_perm(perm) for perm in EVIDENCE_PERMISSIONS)
