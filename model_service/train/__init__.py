"""The Molmo trainer (PIXMO_SPEC.md §5): `python -m model_service.train --help`.

    loop.py      the entry point and the step loop (FSDP, checkpoints, progress)
    cli.py       the command line, turned into a validated TrainConfig
    config.py    TrainConfig and the two stages' recipes as data
    optim.py     parameter groups, schedule, per-component clipping, losses
    order.py     the example order as a pure function of (size, config)
    runfiles.py  what a run writes besides the weights (metrics, curve, progress, state)

`run(cfg, ...)` is the library entry (benchmarks, the platform's training task);
`main(argv)` the command line's.
"""

from model_service.train.loop import main, run

__all__ = ["main", "run"]
