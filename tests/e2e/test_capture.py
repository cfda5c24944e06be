"""The capture page in real Chromium with a fake microphone playing espeak-ng speech."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from annotator_app.captions.models import Recording
from tests.captions.audio_fixtures import espeak_wav
from tests.captions.capture_helpers import MAX_SECONDS, MIN_SECONDS
from tests.captions.pipeline_helpers import words_of, worker
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, assert_clean, log_in, watched_page

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WAIT_MS = 30_000


@pytest.fixture
def speech_wav(tmp_path: Path) -> Path:
    return espeak_wav(tmp_path / "speech.wav")  # about 7.7 s of speech


@pytest.fixture
def mic_browser(browser: Any) -> Iterator[Callable[..., Any]]:
    """Launch a Chromium whose microphone plays `wav` (one file per launch)."""
    launched: list[Any] = []

    def launch(wav: Path | None, *, grant: bool = True) -> Any:
        args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream"]
        if grant:
            args.append("--use-fake-ui-for-media-stream")
        if wav is not None:
            args.append(f"--use-file-for-fake-audio-capture={wav}%noloop")
        # The session's Playwright launches it: one Playwright per thread.
        found = browser.browser_type.launch(executable_path=CHROMIUM, args=args, headless=True)
        launched.append(found)
        return found

    yield launch
    for found in launched:
        found.close()


def cap_campaign(n_images: int = 1) -> Any:
    """A short cap campaign over real stored images (the page shows them)."""
    from PIL import Image, ImageDraw

    from annotator_app.catalog.services import image_import_bytes
    from annotator_app.work.services import campaign_create

    images = []
    for seed in range(n_images):
        picture = Image.new("RGB", (320, 240), (200, 120 + seed * 40, 60))
        ImageDraw.Draw(picture).rectangle((40, 40, 160, 200), fill=(180, 20, 20))
        out = io.BytesIO()
        picture.save(out, "PNG")
        outcome = image_import_bytes(data=out.getvalue(), source_url=f"e2e:{seed}")
        images.append(outcome.image)
    return campaign_create(
        name="e2e capture",
        kind="cap",
        images=images,
        min_seconds=MIN_SECONDS,
        max_seconds=MAX_SECONDS,
    )


@pytest.fixture
def open_page(live_server: Any) -> Iterator[Callable[..., tuple[Any, list[str]]]]:
    """Log in as `username` in a fresh context of `chromium` and open the capture page.

    Contexts close before the test ends, so no page still polls the live server while
    the test database is dropped."""
    contexts: list[Any] = []

    def open_(chromium: Any, username: str, password: str, **options: Any) -> tuple[Any, list[str]]:
        base = live_server.url
        context = chromium.new_context(**options)
        contexts.append(context)
        page, problems = watched_page(context)
        log_in(page, base, username, password)
        page.goto(f"{base}/captions/capture/")
        return page, problems

    yield open_
    for context in contexts:
        context.close()


def _stored_takes(page: Any) -> int:
    return int(
        page.evaluate(
            """() => new Promise((resolve, reject) => {
              const open = indexedDB.open('pixmo-capture');
              open.onsuccess = () => {
                const req = open.result.transaction('chunks').objectStore('chunks').count();
                req.onsuccess = () => resolve(req.result);
                req.onerror = () => reject(req.error);
              };
              open.onerror = () => reject(open.error);
            })"""
        )
    )


def test_record_past_the_minimum_submit_and_follow_the_status(
    mic_browser, open_page, cast, speech_wav: Path, llm_settings
) -> None:
    from playwright.sync_api import expect

    cap_campaign(n_images=1)
    page, problems = open_page(mic_browser(speech_wav), "owner", "pw-owner-123")
    submit = page.get_by_role("button", name="Submit description")
    expect(page.get_by_role("heading", name="Describe this image out loud")).to_be_visible()
    expect(submit).to_be_disabled()

    page.get_by_role("button", name="Start recording").click()
    expect(page.get_by_role("button", name="Stop recording")).to_be_enabled()
    expect(submit).to_be_disabled()  # the minimum (4 s) is not reached yet
    page.wait_for_function(
        "() => document.querySelector('[data-level]').value > 0.01", timeout=WAIT_MS
    )  # the level meter moves with the speech
    page.wait_for_function(
        "() => document.querySelector('[data-timer]').textContent >= '0:05'", timeout=WAIT_MS
    )
    page.get_by_role("button", name="Stop recording").click()
    expect(submit).to_be_enabled()
    expect(page.locator("audio[data-playback]")).to_be_visible()
    expect(page.get_by_role("button", name="Record again")).to_be_visible()

    # Fault injection: the first upload reaches the server, but its answer is lost.
    keys: list[str] = []

    def lose_first_answer(route: Any) -> None:
        keys.append(route.request.headers["idempotency-key"])
        if len(keys) == 1:
            route.fetch()
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/v1/captions/recordings/", lose_first_answer)
    # A real worker runs the pipeline (faster-whisper, then the clean stage: the rules, as
    # CAPTION_LLM=auto leaves them with the bundled model).
    with worker(queues="asr,llm"):
        submit.click()
        status = page.get_by_role("status")
        # Stored, then on through the stages as the worker takes it.
        expect(status).to_contain_text(
            re.compile(r"Processing status: (Stored|Transcribing|Transcribed|Cleaning|Done)"),
            timeout=WAIT_MS,
        )
        assert len(keys) == 2 and keys[0] == keys[1]  # retried under the same key
        recording = Recording.objects.get()  # and stored once
        assert recording.annotator == cast.owner and recording.mime_type == "audio/webm"
        assert 4.0 <= recording.duration_seconds <= 7.0
        assert _stored_takes(page) == 0  # the browser's copy went once the server had it

        # The real pipeline moves it on; the page follows without a reload.
        expect(status).to_contain_text("Processing status: Done", timeout=300_000)
    recording.refresh_from_db()
    assert recording.status == "done", recording.failure_reason
    assert words_of(recording.transcript.text) >= {"brick", "wall", "people"}, (
        recording.transcript.text
    )
    # Found by its element, not its text: the caption may equal the transcript word for word.
    expect(page.locator("[data-caption]")).to_have_text(recording.transcript.cleaned.text)
    expect(page.locator("[data-transcript]")).to_have_text(recording.transcript.text)
    expect(page.locator("[data-timing]")).to_contain_text("first start converts the model")
    # Chromium logs the injected reset; nothing else may go wrong.
    assert_clean(page, [p for p in problems if "ERR_CONNECTION_RESET" not in p])


def test_a_reload_mid_recording_or_a_dropped_network_keeps_the_audio(
    mic_browser, open_page, cast, speech_wav: Path
) -> None:
    from playwright.sync_api import expect

    cap_campaign(n_images=1)
    page, problems = open_page(mic_browser(speech_wav), "owner", "pw-owner-123")
    page.keyboard.press("Space")  # space starts recording
    expect(page.get_by_role("button", name="Stop recording")).to_be_enabled()
    page.wait_for_function(
        "() => document.querySelector('[data-timer]').textContent >= '0:06'", timeout=WAIT_MS
    )
    page.reload()  # as if the tab crashed: the recorder never stopped

    expect(page.get_by_text("Recovered")).to_contain_text("s of audio")
    submit = page.get_by_role("button", name="Submit description")
    expect(submit).to_be_enabled()
    # Fault injection: the network is down when Submit is pressed ...
    page.route("**/api/v1/captions/recordings/", lambda route: route.abort("internetdisconnected"))
    submit.click()
    expect(page.get_by_role("status")).to_contain_text("Upload attempt 1 failed", timeout=WAIT_MS)
    assert Recording.objects.count() == 0 and _stored_takes(page) > 0
    # ... and the annotator gives up and reloads once it is back: the upload resumes.
    page.unroute("**/api/v1/captions/recordings/")
    page.reload()
    expect(page.get_by_role("status")).to_contain_text("Processing status: Stored", timeout=WAIT_MS)
    recording = Recording.objects.get()
    assert recording.duration_seconds >= 4.0
    assert _stored_takes(page) == 0
    assert_clean(page, [p for p in problems if "ERR_INTERNET_DISCONNECTED" not in p])


def test_a_too_short_recording_is_refused_by_the_page_and_the_api(
    mic_browser, open_page, cast, speech_wav: Path
) -> None:
    from playwright.sync_api import expect

    campaign = cap_campaign(n_images=1)
    page, problems = open_page(mic_browser(speech_wav), "owner", "pw-owner-123")
    page.keyboard.press("Space")
    page.wait_for_function(
        "() => document.querySelector('[data-timer]').textContent >= '0:02'", timeout=WAIT_MS
    )
    page.keyboard.press("Space")  # and stops it
    expect(page.locator("audio[data-playback]")).to_be_visible()
    expect(page.get_by_role("button", name="Submit description")).to_be_disabled()
    expect(page.get_by_role("alert")).to_contain_text("need at least 0:04")
    assert_clean(page, problems)  # before the refused request below, which Chromium logs

    # Posting the same audio straight to the API is refused with the reason.
    answer = page.evaluate(
        """async (assignment) => {
          // The take the page kept: its chunks, in order, from IndexedDB.
          const db = await new Promise((ok, no) => {
            const open = indexedDB.open('pixmo-capture');
            open.onsuccess = () => ok(open.result);
            open.onerror = () => no(open.error);
          });
          const chunks = await new Promise((ok, no) => {
            const req = db.transaction('chunks').objectStore('chunks').getAll();
            req.onsuccess = () => ok(req.result);
            req.onerror = () => no(req.error);
          });
          chunks.sort((a, b) => a.seq - b.seq);
          const audio = new Blob(chunks.map((c) => c.blob), {type: 'audio/webm'});
          const body = new FormData();
          body.append('assignment', assignment);
          body.append('audio', audio, 'short.webm');
          const token = document.cookie.split('; ').find((c) => c.startsWith('csrftoken='));
          const response = await fetch('/api/v1/captions/recordings/', {
            method: 'POST', body, credentials: 'same-origin',
            headers: {'X-CSRFToken': token.split('=')[1], 'Idempotency-Key': crypto.randomUUID()},
          });
          return {status: response.status, body: await response.json()};
        }""",
        page.locator("[data-capture]").get_attribute("data-assignment-id"),
    )
    assert answer["status"] == 400, answer
    assert f"at least {campaign.min_seconds} s" in answer["body"]["detail"]
    assert Recording.objects.count() == 0
    assert page.evaluate("window.__cspViolations") == []


def test_a_denied_or_missing_microphone_is_explained(browser, mic_browser, open_page, cast) -> None:
    from playwright.sync_api import expect

    cap_campaign(n_images=1)
    page, _ = open_page(mic_browser(None, grant=False), "owner", "pw-owner-123")
    page.get_by_role("button", name="Start recording").click()
    expect(page.get_by_role("alert")).to_contain_text("Microphone access was denied")
    expect(page.get_by_role("button", name="Start recording")).to_be_enabled()

    # Permission granted, but this Chromium has no audio device at all.
    page, _ = open_page(browser, "owner", "pw-owner-123", permissions=["microphone"])
    page.get_by_role("button", name="Start recording").click()
    expect(page.get_by_role("alert")).to_contain_text("No microphone was found")
