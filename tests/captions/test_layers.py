"""Inside annotator_app/captions, imports run one way: tasks -> pipeline/maintenance ->
queueing; nothing below the tasks imports them (not even inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import annotator_app.captions as captions_package

APP = Path(captions_package.__file__).parent
PACKAGE = "annotator_app.captions"


def imported_captions_modules(path: Path) -> set[str]:
    """Every module of the captions app that `path` imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == PACKAGE:
                found |= {alias.name for alias in node.names}
            elif node.module.startswith(PACKAGE + "."):
                found.add(node.module.removeprefix(PACKAGE + ".").split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name.removeprefix(PACKAGE + ".").split(".")[0])
    return found


def test_nothing_below_the_tasks_imports_them() -> None:
    importers = {
        path.relative_to(APP).as_posix()
        for path in APP.rglob("*.py")
        if path.name != "tasks.py" and "tasks" in imported_captions_modules(path)
    }
    assert importers == set(), f"these modules import captions.tasks: {sorted(importers)}"


def test_the_layers_run_one_way() -> None:
    assert imported_captions_modules(APP / "queueing.py") == set()
    assert "maintenance" not in imported_captions_modules(APP / "pipeline.py")
    assert imported_captions_modules(APP / "tasks.py") >= {"pipeline", "maintenance", "queueing"}


def test_the_stages_are_enqueued_under_the_registered_task_names() -> None:
    from annotator_app.captions import queueing, tasks

    assert tasks.transcribe_recording.name == queueing.TRANSCRIBE
    assert tasks.clean_recording.name == queueing.CLEAN
    assert tasks.summarize_image.name == queueing.SUMMARIZE
    assert tasks.pipeline_sweep.name == queueing.SWEEP
