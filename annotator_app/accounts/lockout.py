"""Login lockout that also counts failures per address, across usernames.

django-axes compares one failure limit with the failures of each lockout parameter set,
so a separate (higher) limit per address needs this small handler: an address whose
failures over every username within the cool-off time reach
LOGIN_ADDRESS_FAILURE_LIMIT is locked out as a username+address pair would be. That
stops credential stuffing (one guess per username from one address), which the pair
alone never counts.
"""

from __future__ import annotations

from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum


def address_failures(request: Any) -> int:
    """Failed logins from this request's address within the cool-off time, any username."""
    address = getattr(request, "axes_ip_address", None)
    if not address:
        return 0
    attempts = AccessAttempt.objects.filter(ip_address=address)
    if settings.AXES_COOLOFF_TIME is not None:
        attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
    return int(attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0)


class AddressAwareLockoutHandler(AxesDatabaseHandler):
    """axes' database handler, plus the per-address limit (0 turns it off)."""

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        failures = int(super().get_failures(request, credentials))
        limit = settings.LOGIN_ADDRESS_FAILURE_LIMIT
        if limit > 0 and address_failures(request) >= limit:
            # Report the pair limit: axes then locks out exactly as for a pair.
            return max(failures, get_failure_limit(request, credentials))
        return failures
