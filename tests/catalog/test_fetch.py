"""pipelines.fetch: the SSRF guard as shipped, against a real server on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipelines import fetch
from pipelines.fetch import FetchRefused, address_problem, fetch_url
from tests.catalog.conftest import ScriptedServer, make_image

OPTS = {"max_bytes": 1_000_000, "timeout": 2, "max_redirects": 3}


def _refused(url: str, **kwargs: object) -> str:
    with pytest.raises(FetchRefused) as caught:
        fetch_url(url, **{**OPTS, **kwargs})  # type: ignore[arg-type]
    return caught.value.reason


def test_allow_listed_test_server_is_reachable(http_server: ScriptedServer) -> None:
    body = make_image("PNG")
    url = http_server.serve_bytes("/a.png", body)
    result = fetch_url(url, **OPTS, allowed_addresses=[f"127.0.0.1:{http_server.port}"])
    assert result.data == body and result.content_type == "image/png"


@pytest.mark.parametrize(
    "scheme_url", ["ftp://example.com/a.png", "file:///etc/passwd", "gopher://x/"]
)
def test_only_http_and_https(scheme_url: str) -> None:
    assert "is not allowed; only http and https" in _refused(scheme_url)


def test_guard_as_shipped_refuses_loopback_forms(http_server: ScriptedServer) -> None:
    url = http_server.serve_bytes("/a.png", make_image("PNG"))
    port = http_server.port
    assert "loopback" in _refused(url)
    assert "loopback" in _refused(f"http://localhost:{port}/a.png")
    assert "loopback" in _refused(f"http://2130706433:{port}/a.png")  # 127.0.0.1 as one number
    assert "loopback" in _refused(f"http://[::1]:{port}/a.png")
    assert "loopback" in _refused(f"http://[::ffff:127.0.0.1]:{port}/a.png")
    assert "loopback" in _refused(f"http://[::ffff:7f00:1]:{port}/a.png")
    assert "unspecified" in _refused(f"http://0.0.0.0:{port}/a.png")
    assert http_server.seen_hosts == []  # nothing ever reached the server


def test_metadata_private_and_other_ranges_are_refused() -> None:
    assert "cloud metadata" in _refused("http://169.254.169.254/latest/meta-data/")
    assert "cloud metadata" in _refused("http://[fd00:ec2::254]/latest/meta-data/")
    assert "cloud metadata" in _refused("http://[::ffff:169.254.169.254]/")
    for text, label in [
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("172.16.5.4", "private"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("fc00::1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 wrapping 10.0.0.1
    ]:
        problem = address_problem(ipaddress.ip_address(text))
        assert problem is not None and label in problem, (text, problem)
    assert address_problem(ipaddress.ip_address("93.184.215.14")) is None
    assert address_problem(ipaddress.ip_address("2606:4700::1111")) is None


def test_a_public_looking_name_resolving_to_loopback_is_refused(
    http_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    http_server.serve_bytes("/a.png", make_image("PNG"))
    monkeypatch.setattr(fetch, "resolve_host", lambda host, port: ["127.0.0.1"])
    reason = _refused(f"http://images.example.com:{http_server.port}/a.png")
    assert "images.example.com" in reason and "loopback" in reason
    # One bad address among good ones is enough to refuse the name.
    monkeypatch.setattr(fetch, "resolve_host", lambda host, port: ["93.184.215.14", "10.0.0.7"])
    assert "private" in _refused("http://mixed.example.com/a.png")
    assert http_server.seen_hosts == []


def test_connection_goes_to_the_vetted_ip_even_if_dns_changes(
    http_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: after the check, a second lookup would answer differently. The
    connection must use the checked IP and never ask DNS again."""
    body = make_image("PNG")
    http_server.serve_bytes("/a.png", body)
    monkeypatch.setattr(fetch, "resolve_host", lambda host, port: ["127.0.0.1"])

    real_getaddrinfo = socket.getaddrinfo
    looked_up: list[object] = []

    def rebound(host: str, *args: object, **kwargs: object) -> object:
        # A rebinding resolver: any real lookup of the name now lands elsewhere.
        looked_up.append(host)
        if host == "rebind.example":
            return real_getaddrinfo("10.255.255.1", *args, **kwargs)  # type: ignore[arg-type]
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    allowed = [f"127.0.0.1:{http_server.port}"]
    url = f"http://rebind.example:{http_server.port}/a.png"
    assert fetch_url(url, **OPTS, allowed_addresses=allowed).data == body
    assert http_server.seen_hosts == [f"rebind.example:{http_server.port}"]
    assert "rebind.example" not in looked_up


def test_redirects_are_checked_on_every_hop(http_server: ScriptedServer) -> None:
    allowed = [f"127.0.0.1:{http_server.port}"]
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other_port = other.getsockname()[1]
    to_other = http_server.redirect("/r1", f"http://127.0.0.1:{other_port}/x.png")
    to_metadata = http_server.redirect("/r2", "http://169.254.169.254/latest/meta-data/")
    to_v6 = http_server.redirect("/r3", f"http://[::1]:{http_server.port}/a.png")
    assert "loopback address 127.0.0.1" in _refused(to_other, allowed_addresses=allowed)
    assert "cloud metadata" in _refused(to_metadata, allowed_addresses=allowed)
    assert "loopback" in _refused(to_v6, allowed_addresses=allowed)
    body = make_image("PNG")
    http_server.serve_bytes("/a.png", body)
    ok = http_server.redirect("/r4", "/a.png")
    assert fetch_url(ok, **OPTS, allowed_addresses=allowed).data == body
    loop = http_server.redirect("/loop", "/loop")
    assert "too many redirects" in _refused(loop, allowed_addresses=allowed)


def test_size_limit_is_enforced_while_streaming(http_server: ScriptedServer) -> None:
    allowed = [f"127.0.0.1:{http_server.port}"]
    endless = http_server.stream_endless("/endless")
    assert "more than 100000 bytes" in _refused(
        endless, max_bytes=100_000, allowed_addresses=allowed
    )
    huge = http_server.declare_huge("/huge")
    assert "Content-Length" in _refused(huge, allowed_addresses=allowed)


def test_slow_server_hits_the_timeout(http_server: ScriptedServer) -> None:
    slow = http_server.stall("/slow", seconds=3)
    reason = _refused(slow, timeout=0.5, allowed_addresses=[f"127.0.0.1:{http_server.port}"])
    assert "timed out" in reason


def test_server_errors_are_reported(http_server: ScriptedServer) -> None:
    reason = _refused(
        http_server.url("/missing"), allowed_addresses=[f"127.0.0.1:{http_server.port}"]
    )
    assert reason == "server answered HTTP 404"


# --- HTTPS: the connection goes to the vetted IP, but SNI and the certificate check
# --- still use the host name.


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, str]]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=images.test",
         "-addext", "subjectAltName=DNS:images.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    body = make_image("PNG")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield int(server.server_address[1]), str(cert)
    finally:
        server.shutdown()
        server.server_close()


def test_https_keeps_the_certificate_check_for_the_name(
    tls_server: tuple[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, cert = tls_server
    monkeypatch.setattr(fetch, "resolve_host", lambda host, p: ["127.0.0.1"])
    allowed = [f"127.0.0.1:{port}"]
    ok = fetch_url(
        f"https://images.test:{port}/a.png", **OPTS, allowed_addresses=allowed, ca_certs=cert
    )
    assert ok.data.startswith(b"\x89PNG")
    # Same IP, another name: the certificate does not match it, so no data.
    reason = _refused(f"https://other.test:{port}/a.png", allowed_addresses=allowed, ca_certs=cert)
    assert "connection failed" in reason
