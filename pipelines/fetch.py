"""Fetch a user-given http(s) URL without letting it reach inside our network (SSRF).

How the guard holds:
- only http and https; no credentials in the URL;
- the host name is resolved here, every address it resolves to is checked (loopback,
  private, link-local, multicast, reserved, unspecified, shared CGNAT space, cloud
  metadata, and IPv4 addresses hidden in IPv6 forms), and the connection is then opened
  to that vetted IP itself — urllib3 never resolves the name again, so a DNS answer that
  changes between check and connect (rebinding) cannot slip through. The Host header,
  TLS SNI and the certificate check still use the name;
- redirects are followed by hand and every hop goes through the same check;
- connect and read timeouts, an overall deadline, and a size limit enforced while
  streaming (a Content-Length over the limit is refused before reading).

`allowed_addresses` ("ip" or "ip:port", exact) exists so tests can reach their own
server on 127.0.0.1; shipped configurations pass an empty list.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import TimeoutError as Urllib3Timeout

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = {"http": 80, "https": 443}
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
CHUNK_BYTES = 64 * 1024
USER_AGENT = "pixmo-platform-image-fetcher/1"

# Instance-metadata endpoints of the big clouds. Most already fall in a refused range;
# naming them gives a clearer reason and covers the ones that look public.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("168.63.129.16"),  # Azure wire server
}
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


class FetchRefused(Exception):
    """The URL was not fetched; `reason` names the problem for a person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FetchResult:
    url: str  # the final URL after redirects
    data: bytes
    content_type: str | None  # as the server declared it; never trusted for the format


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (module-level so tests can inject DNS answers)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why connecting to `ip` is refused, or None when it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        inner = _embedded_ipv4(ip)
        if inner is not None:
            problem = address_problem(inner)
            return f"{problem} (carried in IPv6 form {ip})" if problem else None
    checks: list[tuple[bool, str]] = [
        (ip in METADATA_ADDRESSES, "cloud metadata address"),
        (ip.is_loopback, "loopback address"),
        (ip.is_unspecified, "unspecified address"),
        (ip.is_link_local, "link-local address"),
        (ip.is_multicast, "multicast address"),
        (ip.version == 4 and ip in SHARED_ADDRESS_SPACE, "shared (CGNAT) address"),
        (ip.is_reserved, "reserved address"),
        (ip.is_private, "private address"),
        (not ip.is_global, "address that is not globally routable"),
    ]
    for failed, label in checks:
        if failed:
            return f"{label} {ip}"
    return None


def _is_allowed(ip: IPAddress, port: int, allowed: Collection[str]) -> bool:
    forms = {str(ip), f"{ip}:{port}", f"[{ip}]:{port}"}
    return any(form in allowed for form in forms)


@dataclass(frozen=True)
class _Target:
    scheme: str
    hostname: str
    port: int
    host_header: str
    path: str


def _parse(url: str) -> _Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise FetchRefused(f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise FetchRefused(f"scheme {scheme or '(none)'}:// is not allowed; only http and https")
    if parts.username is not None or parts.password is not None:
        raise FetchRefused("credentials in the URL are not accepted")
    hostname = parts.hostname
    if not hostname:
        raise FetchRefused("URL has no host")
    port = port or ALLOWED_SCHEMES[scheme]
    # The netloc minus any userinfo is what the server expects in Host.
    host_header = parts.netloc.rsplit("@", 1)[-1]
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return _Target(scheme, hostname, port, host_header, path)


def vet_host(hostname: str, port: int, *, allowed_addresses: Collection[str] = ()) -> str:
    """Resolve `hostname` and return the one vetted IP to connect to, or refuse.

    Every resolved address must pass: a name that answers with both a public and a
    private address is refused rather than trusted half-way.
    """
    try:
        addresses = resolve_host(hostname, port)
    except (OSError, UnicodeError) as exc:
        raise FetchRefused(f"cannot resolve host {hostname!r}: {exc}") from None
    if not addresses:
        raise FetchRefused(f"host {hostname!r} resolves to no address")
    for raw in addresses:
        try:
            ip = ipaddress.ip_address(raw.split("%", 1)[0])
        except ValueError:
            raise FetchRefused(f"host {hostname!r} resolved to a malformed address") from None
        if _is_allowed(ip, port, allowed_addresses):
            continue
        problem = address_problem(ip)
        if problem:
            raise FetchRefused(f"host {hostname!r} resolves to a {problem}; refused")
    return addresses[0].split("%", 1)[0]


def _open(
    target: _Target, ip: str, *, timeout: float, ca_certs: str | None
) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
    """One request to the vetted `ip`; the name travels only in Host and TLS SNI."""
    timeouts = urllib3.Timeout(connect=timeout, read=timeout)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            ip,
            target.port,
            timeout=timeouts,
            retries=False,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs,
            server_hostname=target.hostname,
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            ip, target.port, timeout=timeouts, retries=False, maxsize=1
        )
    headers = {
        "Host": target.host_header,
        "User-Agent": USER_AGENT,
        "Accept": "image/*",
        # Compressed transfer would let a small response inflate past the size limit.
        "Accept-Encoding": "identity",
    }
    response = pool.urlopen(
        "GET",
        target.path,
        headers=headers,
        redirect=False,
        retries=False,
        preload_content=False,
        decode_content=False,
        assert_same_host=False,
    )
    return pool, response


def _read_limited(response: urllib3.BaseHTTPResponse, *, max_bytes: int, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise FetchRefused(f"response too large: Content-Length {declared} over {max_bytes} bytes")
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = response.read(CHUNK_BYTES)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise FetchRefused(f"response too large: more than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise FetchRefused("download took too long; timed out")
        chunks.append(chunk)


def fetch_url(
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    max_redirects: int,
    allowed_addresses: Collection[str] = (),
    ca_certs: str | None = None,
) -> FetchResult:
    """GET `url` under the SSRF guard; return the body or raise FetchRefused.

    `timeout` bounds connecting and each read; the whole download must also finish
    within four times that. `ca_certs` overrides the trusted CA bundle (tests).
    """
    deadline = time.monotonic() + 4 * timeout
    current = url
    for _hop in range(max_redirects + 1):
        target = _parse(current)
        ip = vet_host(target.hostname, target.port, allowed_addresses=allowed_addresses)
        try:
            pool, response = _open(target, ip, timeout=timeout, ca_certs=ca_certs)
            try:
                location = response.headers.get("Location")
                if response.status in REDIRECT_STATUSES and location:
                    current = urljoin(current, location)
                    continue
                if response.status != 200:
                    raise FetchRefused(f"server answered HTTP {response.status}")
                data = _read_limited(response, max_bytes=max_bytes, deadline=deadline)
                return FetchResult(current, data, response.headers.get("Content-Type"))
            finally:
                response.close()
                pool.close()
        except Urllib3Timeout as exc:
            raise FetchRefused(f"timed out fetching {current}: {exc}") from None
        except (Urllib3Error, OSError) as exc:
            raise FetchRefused(f"connection failed for {current}: {exc}") from None
    raise FetchRefused(f"too many redirects (more than {max_redirects})")
