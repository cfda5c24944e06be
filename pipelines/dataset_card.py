"""The dataset card (README.md) of a snapshot, as Hugging Face datasets users expect it.

YAML front matter (licence, the data files of the "train" split, the features in the
`datasets` library's notation, the row count), then prose: what the set is, how it was
collected, its counts, its schema, its licence and the filters of this snapshot. Every
string goes through `json.dumps`, which YAML reads as a quoted scalar, so labels or
campaign names holding colons, quotes or markup cannot break the header.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

_DTYPES = {
    pa.string(): "string",
    pa.int64(): "int64",
    pa.int32(): "int32",
    pa.float64(): "float64",
    pa.float32(): "float32",
    pa.bool_(): "bool",
}


def _feature_lines(name: str, kind: pa.DataType, indent: str) -> list[str]:
    """One feature in the `dataset_info.features` YAML notation of `datasets`."""
    head = f"{indent}- name: {json.dumps(name)}"
    if kind in _DTYPES:
        return [head, f"{indent}  dtype: {_DTYPES[kind]}"]
    if pa.types.is_list(kind):
        item = kind.value_type
        if item in _DTYPES:
            return [head, f"{indent}  sequence: {_DTYPES[item]}"]
        if pa.types.is_struct(item):
            lines = [head, f"{indent}  list:"]
            for child in item:
                lines.extend(_feature_lines(child.name, child.type, indent + "  "))
            return lines
    if pa.types.is_struct(kind):
        lines = [head, f"{indent}  struct:"]
        for child in kind:
            lines.extend(_feature_lines(child.name, child.type, indent + "  "))
        return lines
    raise ValueError(f"column {name}: no dataset-card notation for {kind}")


@dataclass(frozen=True)
class CardFacts:
    """What the card says; the numbers come from the finished snapshot."""

    dataset: str  # published name, e.g. "pixmo-points"
    title: str
    what: str
    how_collected: str
    schema: pa.Schema
    data_glob: str
    rows: int
    images: int
    licence: str
    snapshot_id: str
    created_at: str
    code_version: str
    filters: dict[str, Any] = field(default_factory=dict)
    column_notes: dict[str, str] = field(default_factory=dict)


def render_card(facts: CardFacts) -> str:
    """README.md text of a snapshot."""
    header = [
        "---",
        f"license: {json.dumps(facts.licence)}",
        f"pretty_name: {json.dumps(facts.title)}",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        f"    path: {json.dumps(facts.data_glob)}",
        "dataset_info:",
        "  features:",
    ]
    for column in facts.schema:
        header.extend(_feature_lines(column.name, column.type, "  "))
    header += ["  splits:", "  - name: train", f"    num_examples: {facts.rows}", "---", ""]
    rows = [
        f"| `{c.name}` | `{c.type}` | {facts.column_notes.get(c.name, '')} |" for c in facts.schema
    ]
    builder = "parquet" if facts.data_glob.endswith(".parquet") else "json"
    filters = ", ".join(f"{k}={json.dumps(v)}" for k, v in facts.filters.items()) or "none"
    body = [
        f"# {facts.title}",
        "",
        facts.what,
        "",
        "## How it was collected",
        "",
        facts.how_collected,
        "",
        "## Counts",
        "",
        f"- rows: {facts.rows}",
        f"- distinct images: {facts.images}",
        "",
        "## Schema",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
        *rows,
        "",
        "## Licence",
        "",
        f"{facts.licence}. Images are referenced by `image_url`; their own licences are "
        "those of their sources.",
        "",
        "## This snapshot",
        "",
        f"- id: `{facts.snapshot_id}`",
        f"- created: {facts.created_at}",
        f"- code version: `{facts.code_version}`",
        f"- filters: {filters}",
        "- files and their SHA-256: `manifest.json`",
        "",
        f"Load it with `datasets.load_dataset({json.dumps(builder)}, data_files=...)`"
        + (" or pyarrow." if builder == "parquet" else "."),
        "",
    ]
    return "\n".join(header + body)
