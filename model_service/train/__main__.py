"""`python -m model_service.train`: see model_service/train/loop.py."""

from model_service.train.loop import main

raise SystemExit(main())
