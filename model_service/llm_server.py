"""Alias kept for callers written before the move: `python -m model_service.llm_server ARGS`
is `python -m model_service.serve --llm ARGS` (model_service/serve/cli.py)."""

from __future__ import annotations

import sys

from model_service.serve.cli import main as serve_main


def main(argv: list[str] | None = None) -> int:
    return serve_main(["--llm", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
