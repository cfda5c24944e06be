"""Accounts: every person has exactly one role."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    ADMIN = "admin", "Admin"


class User(AbstractUser):
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)

    @property
    def is_platform_admin(self) -> bool:
        """Admins of the platform: the admin role, or a Django superuser."""
        return self.is_active and (self.role == Role.ADMIN or self.is_superuser)

    @property
    def is_reviewer(self) -> bool:
        """Reviewers see and judge others' work; admins can do everything reviewers can."""
        return self.is_active and (self.role == Role.REVIEWER or self.is_platform_admin)
