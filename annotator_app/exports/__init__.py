"""Dataset exports: immutable PixMo-format snapshots, from the browser and the CLI.

Layout: models (`Export`, one row per snapshot), sources (one small module per dataset,
registered in sources/__init__.py: how its rows are selected, in which order, with which
columns), services (create, run, fail: the engine that streams a source through
pipelines/export_writer.py), selectors (reads), tasks (the Celery job on the default
queue), apis and views (admin only), management command `export_pixmo`.

Adding a dataset: write `sources/<name>.py` with a `Source` subclass (a SQL source
returns one JSON object per row through the ORM; see points.py), and register it.
"""
