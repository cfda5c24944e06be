"""Who may read which file under /media/: a registry of prefix -> checker.

Every app that stores files registers a checker for its key prefix (catalog: "images/";
a later app e.g. "audio/" with owner-only access) from its AppConfig.ready(). A checker
gets the logged-in user and the storage key and returns a MediaGrant carrying the
content type recorded for that file, or None when the file does not exist for this user
(served as 404, so probing learns nothing). Keys under no registered prefix are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import Http404


@dataclass(frozen=True)
class MediaGrant:
    content_type: str  # from the stored row, never guessed from the name
    filename: str  # offered to the browser in Content-Disposition


MediaChecker = Callable[[Any, str], MediaGrant | None]

_checkers: dict[str, MediaChecker] = {}

# Keys we write are plain relative paths of these characters; anything else (dot
# segments, backslashes, percent escapes, NUL, absolute paths) is refused outright.
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-][A-Za-z0-9_.\-]*)*$")


def register_media_checker(prefix: str, checker: MediaChecker) -> None:
    """Make `checker` decide access to keys starting with `prefix` (ending in "/")."""
    if not prefix.endswith("/") or prefix.startswith("/"):
        raise ValueError(f"media prefix must look like 'name/', got {prefix!r}")
    _checkers[prefix] = checker


def media_key_is_safe(key: str) -> bool:
    """True for a relative key without traversal tricks (no '..', '\\', '%', '//')."""
    return bool(_SAFE_KEY.match(key)) and ".." not in key


def media_grant(*, user: Any, key: str) -> MediaGrant:
    """The grant for `user` to read `key`, or Http404 (unsafe, unregistered, denied)."""
    if not media_key_is_safe(key):
        raise Http404("no such file")
    matches = [prefix for prefix in _checkers if key.startswith(prefix)]
    if not matches:
        raise Http404("no such file")
    grant = _checkers[max(matches, key=len)](user, key)
    if grant is None:
        raise Http404("no such file")
    return grant
