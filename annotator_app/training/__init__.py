"""Training Molmo from an export snapshot: runs, their progress, the checkpoints they
produce and which checkpoint the AMA captioner uses."""
