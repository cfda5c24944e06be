"""Role and object-level permission helpers used by every endpoint.

The rule of the platform: an annotator sees only their own work, reviewers see the work
of the campaigns they review, admins see everything; only admins import and export.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from annotator_app.accounts.models import User


def is_admin(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_platform_admin)


def is_reviewer(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_reviewer)


def owns(user: Any, obj: Any, owner_field: str = "annotator") -> bool:
    """True when `obj.<owner_field>` is this user (compared by id, no extra query)."""
    owner_id = getattr(obj, f"{owner_field}_id", None)
    return bool(getattr(user, "is_authenticated", False) and owner_id == user.pk)


def can_view_work(user: User, obj: Any, owner_field: str = "annotator") -> bool:
    """Annotators: their own work only. Reviewers and admins: everyone's."""
    return owns(user, obj, owner_field) or is_reviewer(user)


class IsPlatformAdmin(BasePermission):
    message = "Only admins may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_admin(request.user)


class IsReviewer(BasePermission):
    message = "Only reviewers and admins may do this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_reviewer(request.user)


class IsOwnerOrReviewer(BasePermission):
    """Object-level check for views whose objects carry an `annotator` foreign key."""

    message = "You may only access your own work."
    owner_field = "annotator"

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        field = getattr(view, "owner_field", self.owner_field)
        return can_view_work(request.user, obj, field)  # type: ignore[arg-type]
