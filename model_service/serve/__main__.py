"""`python -m model_service.serve`: see model_service/serve/cli.py."""

from model_service.serve.cli import main

raise SystemExit(main())
