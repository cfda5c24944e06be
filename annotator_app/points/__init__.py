"""PixMo-Points: annotators point at every instance of a label, count, or say "not present".

Layout: models (annotations, labels, agreement, totals), services (submit and amend,
with every validation), agreement (comparison of an item's annotations once all are in,
stored with running totals), review (reviewers' decisions), selectors (reads), apis and
views (thin), templatetags (the work dashboard's agreement section).

For the dataset export (P7): `selectors.label_annotations_for_export(campaign=None,
since=None)` is a queryset of `LabelAnnotation` rows that belong in the dataset
(accepted assignments, not superseded by a reviewer's pick), ordered by id, each with
`annotation.image` loaded; stream it with `.iterator(chunk_size=...)`. A row maps to
the pixmo-points schema as: image_url <- the image (source_url or its media URL),
image_sha256 <- `annotation.image.sha256`, points <- `points` (a list of {"x", "y"}
floats, percent of width/height, 0..100, in the order placed), count <- `count` (0 =
"not present", with empty points), label <- `label`, collection_method <-
`collection_method` ("pointing" or "counting"). Molmo's text for a row comes from
`selectors.label_molmo_text` (pipelines/molmo_text.py).
"""
