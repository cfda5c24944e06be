"""`make run`: the platform on this machine with embedded PostgreSQL and Redis.

The launcher (`python -m annotator_app.runtime`) writes the addresses of the embedded
servers it started to var/runtime.env; explicit environment variables win.
"""

import os
from pathlib import Path

_runtime_env = Path(os.environ.get("PIXMO_VAR_DIR", Path(__file__).resolve().parents[2] / "var"))
_runtime_env = _runtime_env / "runtime.env"
if _runtime_env.exists():
    for _line in _runtime_env.read_text().splitlines():
        _key, _sep, _value = _line.partition("=")
        if _sep and _key.strip() and not os.environ.get(_key.strip()):
            os.environ[_key.strip()] = _value.strip()

from annotator_app.settings.base import *  # noqa: E402,F403

DEBUG = os.environ.get("DEBUG", "0") == "1"
