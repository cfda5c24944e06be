"""Template tags of the points app: its section of the work dashboard.

The dashboard belongs to the work app, which must not import points (apps depend one
way); its template includes this section by tag instead, reading stored totals only.
"""

from __future__ import annotations

from typing import Any

from django import template

from annotator_app.points.selectors import agreement_by_annotator, agreement_by_campaign

register = template.Library()


@register.inclusion_tag("points/_agreement_section.html")
def points_agreement(selected: Any = None) -> dict[str, Any]:
    """Agreement per points campaign (overlap > 1) and per annotator."""
    campaign = selected if getattr(selected, "kind", None) == "points" else None
    return {
        "campaigns": agreement_by_campaign(),
        "annotators": agreement_by_annotator(campaign=campaign),
        "selected": campaign,
    }
