"""The registry of exportable datasets: name on the command line -> source.

A new dataset is one module with a `Source` subclass and one line here.
"""

from __future__ import annotations

from annotator_app.exports.sources.ama import AmaSource, CapQASource, PreferencesSource
from annotator_app.exports.sources.base import Source, SourceError
from annotator_app.exports.sources.cap import CapSource
from annotator_app.exports.sources.clocks import ClocksSource
from annotator_app.exports.sources.points import PointsSource

SOURCES: dict[str, Source] = {
    source.key: source
    for source in (
        CapSource(),
        PointsSource(),
        AmaSource(),
        CapQASource(),
        PreferencesSource(),
        ClocksSource(),
    )
}


def source_get(dataset: str) -> Source:
    """The source of `dataset`; SourceError names the known ones."""
    try:
        return SOURCES[dataset]
    except KeyError:
        raise SourceError(
            f"unknown dataset {dataset!r}; one of: {', '.join(sorted(SOURCES))}"
        ) from None
