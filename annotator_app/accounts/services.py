"""Account writes."""

from __future__ import annotations

from django.db import transaction

from annotator_app.accounts.models import Role, User


@transaction.atomic
def user_ensure(*, username: str, password: str, role: Role, email: str = "") -> tuple[User, bool]:
    """Create the user if missing; keep an existing one's password and role as they are.

    Returns the user and whether it was created, so seeding is idempotent.
    """
    user, created = User.objects.get_or_create(
        username=username, defaults={"role": role, "email": email}
    )
    if created:
        user.set_password(password)
        user.is_staff = role == Role.ADMIN
        user.is_superuser = role == Role.ADMIN
        user.save(update_fields=["password", "is_staff", "is_superuser"])
    return user, created
