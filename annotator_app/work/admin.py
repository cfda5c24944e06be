"""Django admin for the work engine: campaigns (items follow on save), items, assignments.

Counters and statuses are read-only here: they move only through the services.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from annotator_app.catalog.admin import ImageThumbnailColumn
from annotator_app.work.forms import LabelPromptsField
from annotator_app.work.models import Assignment, Campaign, WorkItem
from annotator_app.work.services import CampaignError, campaign_sync_items, campaign_validate


class CampaignForm(ModelForm):
    label_prompts = LabelPromptsField(
        required=False,
        help_text="Points: the labels annotators point at. Counting campaigns ask every one "
        "(some may name things that are absent on purpose); pointing campaigns offer them "
        "as suggestions.",
    )

    class Meta:
        model = Campaign
        fields = [
            "name",
            "kind",
            "topics",
            "images",
            "overlap",
            "min_seconds",
            "max_seconds",
            "live_guidance",
            "collection_method",
            "label_prompts",
            "guidelines",
            "priority",
            "active",
            "breadth_first",
            "lease_seconds",
            "reviewers",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            campaign_validate(
                kind=data.get("kind", ""),
                overlap=data.get("overlap") or 0,
                min_seconds=data.get("min_seconds") or 0,
                max_seconds=data.get("max_seconds") or 0,
                label_prompts=data.get("label_prompts") or [],
                lease_seconds=data.get("lease_seconds") or 0,
                collection_method=data.get("collection_method") or "",
            )
        except CampaignError as exc:
            field, _, message = str(exc).partition(": ")
            raise ValidationError({field: message}) from None
        return data


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    list_display = ("name", "kind", "overlap", "priority", "active", "breadth_first")
    list_filter = ("kind", "active")
    search_fields = ("name",)
    filter_horizontal = ("topics", "images", "reviewers")
    fieldsets = [
        (None, {"fields": ["name", "kind", "topics", "images", "overlap", "guidelines"]}),
        ("Spoken descriptions (cap)", {"fields": ["min_seconds", "max_seconds", "live_guidance"]}),
        ("Points", {"fields": ["collection_method", "label_prompts"]}),
        (
            "Serving",
            {"fields": ["priority", "active", "breadth_first", "lease_seconds", "reviewers"]},
        ),
    ]
    actions = ["sync_items"]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Items follow the campaign's images once its many-to-many fields are saved.
        super().save_related(request, form, formsets, change)
        counts = campaign_sync_items(campaign=form.instance)
        self.message_user(
            request, f"items: {counts['created']} created, {counts['removed']} removed"
        )

    @admin.action(description="Sync work items with the campaign's images")
    def sync_items(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        for campaign in queryset:
            counts = campaign_sync_items(campaign=campaign)
            self.message_user(
                request,
                f"{campaign.name}: {counts['created']} created, {counts['removed']} removed",
                messages.SUCCESS,
            )


@admin.register(WorkItem)
class WorkItemAdmin(ImageThumbnailColumn, admin.ModelAdmin):
    list_display = ("id", "campaign", "image_thumbnail", "open_slots", "done_count", "created_at")
    list_filter = ("campaign",)
    readonly_fields = ("campaign", "image", "open_slots", "done_count", "created_at")
    list_select_related = ("campaign", "image")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "item", "annotator", "status", "leased_until", "submitted_at")
    list_filter = ("status", "item__campaign")
    search_fields = ("annotator__username",)
    list_select_related = ("item__campaign", "annotator")
    readonly_fields = tuple(f.name for f in Assignment._meta.fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
