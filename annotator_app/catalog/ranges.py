"""Byte ranges for media served from the filesystem (RFC 9110 section 14).

Players need them: Chrome seeks in an <audio> element only when the server answers
`Range` requests (without `Accept-Ranges: bytes` it treats the file as a live stream
and a seek lands back at 0). One range per request is served; a header asking for
several, or one that does not parse, is ignored and the whole file is sent, as the RFC
allows. S3 answers ranges itself (the signed redirect).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

from django.http import HttpResponse, StreamingHttpResponse

_SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK_BYTES = 64 * 1024


class RangeNotSatisfiable(ValueError):
    """The range starts past the end of the file (answered 416)."""


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte of a single-range `Range` header, or None to
    send the whole file. Raises RangeNotSatisfiable when no byte of it exists."""
    match = _SINGLE_RANGE.match((header or "").strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # "bytes=-N": the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"bytes */{size}")
        return max(size - suffix, 0), size - 1
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if last and int(last) < start:
        return None  # not a valid range: ignored
    if start >= size:
        raise RangeNotSatisfiable(f"bytes */{size}")
    return start, end


def _chunks(handle: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        while length > 0:
            data = handle.read(min(CHUNK_BYTES, length))
            if not data:
                return
            length -= len(data)
            yield data
    finally:
        handle.close()


def partial_response(
    handle: IO[bytes], first: int, last: int, size: int, content_type: str
) -> StreamingHttpResponse:
    """206 with bytes first..last of the open file (closed when sent)."""
    length = last - first + 1
    response = StreamingHttpResponse(
        _chunks(handle, first, length), status=206, content_type=content_type
    )
    response["Content-Range"] = f"bytes {first}-{last}/{size}"
    response["Content-Length"] = str(length)
    return response


def not_satisfiable(size: int) -> HttpResponse:
    response = HttpResponse(status=416)
    response["Content-Range"] = f"bytes */{size}"
    return response
