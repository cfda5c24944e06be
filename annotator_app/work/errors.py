"""What every kind of work's services share when they refuse a request.

A service raises a `Refused` subclass (its `status_code` is the HTTP answer, its message
says why, `extra` are fields a page reads, such as the live endpoint's
`expected_offset`); an API turns it into that answer with `RefusedAnswer`. Keys a client makes up to make a submit
idempotent (a recording's or a points submission's key, a live take) share one shape.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework.exceptions import APIException

# A client-made key: a UUID in practice; anything of these characters is accepted.
CLIENT_KEY = re.compile(r"^[A-Za-z0-9_\-]{8,64}$")


class Refused(Exception):
    """A request is refused; `status_code` is the HTTP answer, the message says why."""

    status_code = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class RefusedAnswer(APIException):
    """A `Refused` as an HTTP answer: its status and its message as `detail` (an API
    whose page reads `extra` answers with a Response of its own: DRF would turn the
    extras' numbers into strings)."""

    def __init__(self, error: Refused) -> None:
        super().__init__(detail=error.message)
        self.status_code = error.status_code
