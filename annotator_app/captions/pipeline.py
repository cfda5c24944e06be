"""Placeholder until the speech-to-caption pipeline lands (P4 replaces this module)."""


def pipeline_start(recording_id: int) -> None:
    """Enqueue the first stage (ASR) for a stored recording."""
