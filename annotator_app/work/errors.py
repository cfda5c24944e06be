"""What every kind of work's services share when they refuse a request.

A service raises a `Refused` subclass (its `status_code` is the HTTP answer, its message
says why, `extra` are fields a page reads, such as the live endpoint's `expected_offset`);
`api_exception_handler` turns it into that answer for every API. Keys a client makes up
to make a submit idempotent (a recording's or a points submission's key, a live take)
share one shape.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

# A client-made key: a UUID in practice; anything of these characters is accepted.
CLIENT_KEY = re.compile(r"^[A-Za-z0-9_\-]{8,64}$")


class Refused(Exception):
    """A request is refused; `status_code` is the HTTP answer, the message says why."""

    status_code = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus: a `Refused` from any service is its HTTP answer, the message
    as `detail` next to its extras (numbers stay numbers). Set in settings.REST_FRAMEWORK,
    so the APIs call services without catching their refusals."""
    if isinstance(exc, Refused):
        set_rollback()
        return Response({"detail": exc.message, **exc.extra}, status=exc.status_code)
    return exception_handler(exc, context)
