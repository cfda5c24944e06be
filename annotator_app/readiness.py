"""What `make run` waits for before it says the platform is ready.

Each part the launcher started is asked whether it answers: web (the login page), the
Celery worker (a control ping over the broker), beat (its schedule file written since
the launch) and the local LLM (`GET /health`: 200 when serving; 503 with the loading
stage and progress while it loads or converts its weights on a first start). Until all
answer, the launcher prints which parts are still starting, with the LLM's progress; the
ready line comes only when every part answers.

Like annotator_app.runtime, this module must not import Django.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

# (answers, what to say while it does not)
Check = Callable[[], tuple[bool, str]]


@dataclass(frozen=True)
class Part:
    name: str
    check: Check


def web_check(url: str) -> Check:
    def check() -> tuple[bool, str]:
        try:
            with urllib.request.urlopen(f"{url}/login/", timeout=2) as response:  # noqa: S310
                return response.status == 200, f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            return False, f"HTTP {exc.code}"
        except OSError:
            return False, "not answering yet"

    return check


def celery_broker_url(redis_url: str) -> str:
    """The broker URL Celery uses for REDIS_URL (settings/base.py does the same)."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        db = parse_qs(parts.query).get("db", ["0"])[0]
        return f"redis+socket://{parts.path}?virtual_host={db}"
    return redis_url


def worker_check(redis_url: str) -> Check:
    """A Celery control ping: true once a worker consumes from the broker."""
    from celery import Celery

    app = Celery("pixmo-readiness", broker=celery_broker_url(redis_url))

    def check() -> tuple[bool, str]:
        try:
            replies = app.control.ping(timeout=1.0)
        except Exception:  # the broker itself not answering yet
            return False, "broker not answering yet"
        return bool(replies), "no ping answer yet"

    return check


def beat_check(var: Path, since: float) -> Check:
    """Beat opens (and writes) its schedule file once it runs."""

    def check() -> tuple[bool, str]:
        for path in var.glob("celerybeat-schedule*"):
            if path.stat().st_mtime >= since - 1:
                return True, ""
        return False, "schedule not written yet"

    return check


def llm_check(base_url: str) -> Check:
    """The local LLM server's /health; its 503 body says what it is doing."""
    health = base_url.rstrip("/").removesuffix("/v1") + "/health"
    last = [""]  # what it said last: a probe lost to a busy CPU repeats it

    def check() -> tuple[bool, str]:
        try:
            # Generous: the conversion holds the GIL for long stretches on a busy machine.
            with urllib.request.urlopen(health, timeout=5) as response:  # noqa: S310
                return response.status == 200, ""
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read() or b"{}")
            except ValueError:
                body = {}
            last[0] = describe_loading(body) or f"HTTP {exc.code}"
            return False, last[0]
        except OSError:
            return False, last[0] or "not answering yet"

    return check


def describe_loading(body: dict[str, object]) -> str:
    """'converting GGUF (one-time): weights, 40/272 tensors, 35 s' from a 503 /health body."""
    if body.get("status") != "loading":
        return ""
    text = str(body.get("stage") or "starting")
    total = body.get("total")
    if isinstance(total, int) and total > 0:
        text += f", {body.get('done', 0)}/{total} {body.get('unit') or ''}".rstrip()
    elapsed = body.get("elapsed_seconds")
    if isinstance(elapsed, int | float):
        text += f", {elapsed:.0f} s"
    return text


class Monitor(threading.Thread):
    """Polls the parts until all answer, printing what is still starting meanwhile."""

    def __init__(
        self,
        parts: list[Part],
        url: str,
        stop: threading.Event,
        *,
        say: Callable[[str], None] = lambda line: print(line, flush=True),
        interval: float = 1.0,
        report_every: float = 10.0,
    ) -> None:
        super().__init__(name="readiness", daemon=True)
        self.parts = parts
        self.url = url
        self.stop = stop
        self.say = say
        self.interval = interval
        self.report_every = report_every
        self.ready = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        done: set[str] = set()
        last_key, last_time = "", 0.0
        web_said = False
        while not self.stop.is_set():
            waiting: list[str] = []
            for part in self.parts:
                if part.name in done:
                    continue
                answers, detail = part.check()
                if answers:
                    done.add(part.name)
                else:
                    waiting.append(f"{part.name} ({detail})" if detail else part.name)
            if not waiting:
                names = ", ".join(p.name for p in self.parts)
                seconds = time.monotonic() - started
                self.say(
                    f"\n  PixMo platform ready at {self.url}: {names} answer "
                    f"({seconds:.0f} s). Ctrl-C stops it.\n"
                )
                self.ready.set()
                return
            if "web" in done and not web_said:
                web_said = True
                self.say(
                    f"  web answers at {self.url}; other parts are still starting (work "
                    "waits for them; the capture page says when the LLM is still loading)"
                )
            line = "  still starting: " + "; ".join(waiting)
            # A new part or stage is said at once, mere progress every `report_every`.
            key = re.sub(r"[0-9/.,]+", "", line)
            now = time.monotonic()
            if key != last_key or now - last_time >= self.report_every:
                self.say(line)
                last_key, last_time = key, now
            self.stop.wait(self.interval)
