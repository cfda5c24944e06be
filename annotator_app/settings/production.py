"""Production: refuses to start without a real secret and explicit hosts."""

import os

from annotator_app.settings.env import ConfigError, env_bool, env_int, env_list

if not os.environ.get("SECRET_KEY"):
    raise ConfigError("environment variable SECRET_KEY is required in production")
if not env_list("ALLOWED_HOSTS"):
    raise ConfigError("environment variable ALLOWED_HOSTS is required in production")

from annotator_app.settings.base import *  # noqa: F403

DEBUG = False
DEMO_SEED_ALLOWED = False
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
# A local or in-cluster LLM server needs no key; a remote (https) endpoint needs a real one.
if OPENAI_BASE_URL.startswith("https://") and OPENAI_API_KEY == "local":  # noqa: F405
    raise ConfigError(
        "environment variable OPENAI_API_KEY is required for an https OPENAI_BASE_URL"
    )
