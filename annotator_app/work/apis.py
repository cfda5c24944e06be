"""Work API under /api/v1/work/: campaigns, next, lease moves, review and progress.

Object rules: an annotator acts only on their own assignments (anyone else's id is
404); reviewers act on the campaigns they review (selectors.can_review_campaign);
admins everywhere; only admins create and edit campaigns.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator_app.accounts.models import User
from annotator_app.accounts.permissions import IsPlatformAdmin, IsReviewer, is_admin
from annotator_app.catalog.models import Image, Topic
from annotator_app.catalog.selectors import image_media_url
from annotator_app.work import selectors
from annotator_app.work.models import Assignment, Campaign, CampaignKind, CollectionMethod
from annotator_app.work.services import (
    SKIP_REASON_MAX_CHARS,
    AssignmentStateError,
    CampaignError,
    assignment_heartbeat,
    assignment_next,
    assignment_release,
    assignment_skip,
    assignment_verdict,
    assignments_accept_bulk,
    campaign_create,
    campaign_update,
)

MAX_ACTIVE_SECONDS = 24 * 3600
MAX_BULK_ACCEPT = 500


# --- output shapes -------------------------------------------------------------------------


@extend_schema_serializer(component_name="WorkCampaign")
class CampaignOutputSerializer(serializers.ModelSerializer):
    topics: Any = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)

    class Meta:
        model = Campaign
        fields = ["id", "name", "kind", "topics", "overlap", "min_seconds", "max_seconds"]
        fields += ["label_prompts", "guidelines", "priority", "active", "breadth_first"]
        fields += ["lease_seconds", "collection_method", "live_guidance"]


@extend_schema_serializer(component_name="WorkAssignment")
class AssignmentOutputSerializer(serializers.ModelSerializer):
    campaign = CampaignOutputSerializer(source="item.campaign")
    item_id = serializers.IntegerField()
    image_id = serializers.IntegerField(source="item.image_id")
    image_url = serializers.SerializerMethodField()

    class Meta:
        model = Assignment
        fields = ["id", "status", "campaign", "item_id", "image_id", "image_url"]
        fields += ["leased_until", "heartbeat_at", "started_at", "submitted_at"]
        fields += ["active_seconds", "reviewed_at", "review_reason", "skip_reason"]

    def get_image_url(self, assignment: Assignment) -> str:
        return image_media_url(image=assignment.item.image, request=self.context.get("request"))


@extend_schema_serializer(component_name="WorkReviewItem")
class ReviewItemSerializer(AssignmentOutputSerializer):
    annotator = serializers.CharField(source="annotator.username")

    class Meta(AssignmentOutputSerializer.Meta):
        fields = [*AssignmentOutputSerializer.Meta.fields, "annotator"]


def _assignment_data(request: Request, assignment: Assignment) -> dict[str, Any]:
    return dict(AssignmentOutputSerializer(assignment, context={"request": request}).data)


def _paginated(request: Request, view: APIView, rows: Any, serializer: Any) -> Response:
    paginator = LimitOffsetPagination()
    page: list[Any] | None = paginator.paginate_queryset(rows, request, view=view)
    data = serializer(page, many=True, context={"request": request}).data
    return paginator.get_paginated_response(data)


# --- campaigns -----------------------------------------------------------------------------


@extend_schema_serializer(component_name="WorkCampaignInput")
class CampaignInputSerializer(serializers.Serializer):
    """Create (all required fields) or edit (partial) a campaign; admins only."""

    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=CampaignKind.choices)
    topics = serializers.ListField(child=serializers.SlugField(), required=False)
    image_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=100_000
    )
    overlap = serializers.IntegerField(min_value=1, max_value=100, required=False)
    min_seconds = serializers.IntegerField(min_value=0, max_value=86_400, required=False)
    max_seconds = serializers.IntegerField(min_value=1, max_value=86_400, required=False)
    label_prompts = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=100
    )
    guidelines = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    priority = serializers.IntegerField(min_value=-1000, max_value=1000, required=False)
    active = serializers.BooleanField(required=False)
    breadth_first = serializers.BooleanField(required=False)
    lease_seconds = serializers.IntegerField(min_value=30, max_value=86_400, required=False)
    collection_method = serializers.ChoiceField(choices=CollectionMethod.choices, required=False)
    live_guidance = serializers.BooleanField(required=False)  # P12, cap campaigns
    reviewers = serializers.ListField(child=serializers.CharField(), required=False)

    def validate_topics(self, slugs: list[str]) -> list[Topic]:
        found = list(Topic.objects.filter(slug__in=slugs))
        missing = sorted(set(slugs) - {t.slug for t in found})
        if missing:
            raise ValidationError(f"unknown topics: {', '.join(missing)}")
        return found

    def validate_image_ids(self, ids: list[int]) -> list[Image]:
        found = list(Image.objects.filter(pk__in=ids))
        missing = sorted(set(ids) - {i.pk for i in found})
        if missing:
            raise ValidationError(f"unknown images: {', '.join(map(str, missing[:20]))}")
        return found

    def validate_reviewers(self, names: list[str]) -> list[User]:
        found = list(User.objects.filter(username__in=names))
        missing = sorted(set(names) - {u.username for u in found})
        if missing:
            raise ValidationError(f"unknown users: {', '.join(missing)}")
        not_reviewers = sorted(u.username for u in found if not u.is_reviewer)
        if not_reviewers:
            raise ValidationError(f"not reviewers: {', '.join(not_reviewers)}")
        return found

    def validate_name(self, name: str) -> str:
        name = name.strip()
        if not name:
            raise ValidationError("must not be blank")
        others = Campaign.objects.filter(name=name)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise ValidationError(f"a campaign named {name!r} exists already")
        return name


def _campaign_fields(data: dict[str, Any]) -> dict[str, Any]:
    fields = dict(data)
    if "image_ids" in fields:
        fields["images"] = fields.pop("image_ids")
    return fields


def _campaign_error(exc: CampaignError) -> ValidationError:
    field, _, message = str(exc).partition(": ")
    return ValidationError({field: [message or str(exc)]})


class CampaignListCreateApi(APIView):
    """GET: campaigns an annotator may work on (admins: add ?all=1). POST: admins create."""

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method == "POST":
            return [IsAuthenticated(), IsPlatformAdmin()]
        return [IsAuthenticated()]

    @extend_schema(responses=CampaignOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        if is_admin(request.user) and request.query_params.get("all") == "1":
            rows = Campaign.objects.order_by("-priority", "id")
        else:
            rows = selectors.campaigns_for_annotator()
        return Response(CampaignOutputSerializer(rows.prefetch_related("topics"), many=True).data)

    @extend_schema(request=CampaignInputSerializer, responses=CampaignOutputSerializer)
    def post(self, request: Request) -> Response:
        data = CampaignInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            campaign = campaign_create(**_campaign_fields(data.validated_data))
        except CampaignError as exc:
            raise _campaign_error(exc) from None
        return Response(CampaignOutputSerializer(campaign).data, status=status.HTTP_201_CREATED)


class CampaignDetailApi(APIView):
    """GET: an active campaign (admins: any). PATCH: admins edit."""

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method == "PATCH":
            return [IsAuthenticated(), IsPlatformAdmin()]
        return [IsAuthenticated()]

    def _campaign(self, request: Request, campaign_id: int) -> Campaign:
        campaign = selectors.campaign_get(campaign_id=campaign_id)
        if campaign is None or not (campaign.active or is_admin(request.user)):
            raise NotFound("no such campaign")
        return campaign

    @extend_schema(responses=CampaignOutputSerializer)
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(CampaignOutputSerializer(self._campaign(request, campaign_id)).data)

    @extend_schema(request=CampaignInputSerializer, responses=CampaignOutputSerializer)
    def patch(self, request: Request, campaign_id: int) -> Response:
        campaign = self._campaign(request, campaign_id)
        data = CampaignInputSerializer(campaign, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        try:
            campaign = campaign_update(campaign=campaign, **_campaign_fields(data.validated_data))
        except CampaignError as exc:
            raise _campaign_error(exc) from None
        return Response(CampaignOutputSerializer(campaign).data)


# --- the annotator's moves -----------------------------------------------------------------


class NextApi(APIView):
    """The lease the caller holds, or a newly claimed one; 204 when no work is left."""

    @extend_schema_serializer(component_name="WorkNextInput")
    class InputSerializer(serializers.Serializer):
        campaign = serializers.IntegerField(min_value=1, required=False)
        kind = serializers.ChoiceField(choices=CampaignKind.choices, required=False)

    @extend_schema(request=InputSerializer, responses={200: AssignmentOutputSerializer, 204: None})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = None
        if "campaign" in data.validated_data:
            campaign = selectors.campaign_get(campaign_id=data.validated_data["campaign"])
            if campaign is None or not campaign.active:
                raise ValidationError({"campaign": ["no active campaign with this id"]})
        assignment = assignment_next(
            user=request.user,  # type: ignore[arg-type]
            campaign=campaign,
            kind=data.validated_data.get("kind"),
        )
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_assignment_data(request, assignment))


def _own(request: Request, assignment_id: int) -> Assignment:
    assignment = selectors.assignment_get_own(user=request.user, assignment_id=assignment_id)
    if assignment is None:
        raise NotFound("no such assignment")
    return assignment


def _state_error(exc: AssignmentStateError) -> ValidationError:
    return ValidationError({"detail": str(exc)})


class AssignmentDetailApi(APIView):
    """One of the caller's assignments (reviewers: of their campaigns)."""

    @extend_schema(responses=AssignmentOutputSerializer)
    def get(self, request: Request, assignment_id: int) -> Response:
        found = selectors.assignment_get_own(
            user=request.user, assignment_id=assignment_id
        ) or selectors.assignment_get_reviewable(user=request.user, assignment_id=assignment_id)
        if found is None:
            raise NotFound("no such assignment")
        return Response(_assignment_data(request, found))


class HeartbeatApi(APIView):
    @extend_schema_serializer(component_name="WorkHeartbeatInput")
    class InputSerializer(serializers.Serializer):
        active_seconds = serializers.IntegerField(
            min_value=0, max_value=MAX_ACTIVE_SECONDS, required=False
        )

    @extend_schema(request=InputSerializer, responses=AssignmentOutputSerializer)
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = _own(request, assignment_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            assignment_heartbeat(
                assignment=assignment, active_seconds=data.validated_data.get("active_seconds")
            )
        except AssignmentStateError as exc:
            raise _state_error(exc) from None
        assignment.refresh_from_db()
        return Response(_assignment_data(request, assignment))


class SkipApi(APIView):
    """Skip one's leased item, optionally saying why (task pages ask for a reason)."""

    @extend_schema_serializer(component_name="WorkSkipInput")
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=SKIP_REASON_MAX_CHARS
        )

    @extend_schema(request=InputSerializer, responses=AssignmentOutputSerializer)
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = _own(request, assignment_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            assignment_skip(assignment=assignment, reason=data.validated_data["reason"])
        except AssignmentStateError as exc:
            raise _state_error(exc) from None
        assignment.refresh_from_db()
        return Response(_assignment_data(request, assignment))


class ReleaseApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = _own(request, assignment_id)
        try:
            assignment_release(assignment=assignment)
        except AssignmentStateError as exc:
            raise _state_error(exc) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class HistoryApi(APIView):
    """The caller's own assignments, newest first, with verdicts and reasons."""

    @extend_schema(responses=AssignmentOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        rows = selectors.assignment_history(user=request.user)
        return _paginated(request, self, rows, AssignmentOutputSerializer)


# --- review --------------------------------------------------------------------------------


def _reviewable_campaign(request: Request, campaign_id: int) -> Campaign:
    campaign = selectors.campaign_get(campaign_id=campaign_id)
    if campaign is None or not selectors.can_review_campaign(request.user, campaign):
        raise NotFound("no such campaign")
    return campaign


class ReviewQueueApi(APIView):
    permission_classes = [IsAuthenticated, IsReviewer]

    @extend_schema(responses=ReviewItemSerializer(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _reviewable_campaign(request, campaign_id)
        return _paginated(
            request, self, selectors.review_queue(campaign=campaign), ReviewItemSerializer
        )


class VerdictApi(APIView):
    permission_classes = [IsAuthenticated, IsReviewer]

    @extend_schema_serializer(component_name="WorkVerdictInput")
    class InputSerializer(serializers.Serializer):
        accept = serializers.BooleanField()
        reason = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=2000
        )

    @extend_schema(request=InputSerializer, responses=ReviewItemSerializer)
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = selectors.assignment_get_reviewable(
            user=request.user, assignment_id=assignment_id
        )
        if assignment is None:
            raise NotFound("no such assignment")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            assignment_verdict(
                assignment=assignment,
                reviewer=request.user,  # type: ignore[arg-type]
                accept=data.validated_data["accept"],
                reason=data.validated_data["reason"],
            )
        except AssignmentStateError as exc:
            raise _state_error(exc) from None
        assignment.refresh_from_db()
        return Response(ReviewItemSerializer(assignment, context={"request": request}).data)


class AcceptBulkApi(APIView):
    """Accept many submissions of one campaign at once (ids of other campaigns: 400)."""

    permission_classes = [IsAuthenticated, IsReviewer]

    @extend_schema_serializer(component_name="WorkAcceptBulkInput")
    class InputSerializer(serializers.Serializer):
        assignment_ids = serializers.ListField(
            child=serializers.IntegerField(min_value=1), min_length=1, max_length=MAX_BULK_ACCEPT
        )

    @extend_schema_serializer(component_name="WorkAcceptBulkOutput")
    class OutputSerializer(serializers.Serializer):
        accepted = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = _reviewable_campaign(request, campaign_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ids = data.validated_data["assignment_ids"]
        inside = set(
            Assignment.objects.filter(pk__in=ids, item__campaign=campaign).values_list(
                "pk", flat=True
            )
        )
        outside = sorted(set(ids) - inside)
        if outside:
            shown = ", ".join(map(str, outside[:20]))
            raise ValidationError({"assignment_ids": [f"not in this campaign: {shown}"]})
        accepted = assignments_accept_bulk(assignment_ids=ids, reviewer=request.user)  # type: ignore[arg-type]
        return Response({"accepted": accepted})


# --- progress ------------------------------------------------------------------------------


@extend_schema_serializer(component_name="WorkAnnotatorProgress")
class AnnotatorProgressSerializer(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()
    items = serializers.IntegerField()
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    active_seconds = serializers.IntegerField()
    items_per_hour = serializers.FloatField(allow_null=True)


@extend_schema_serializer(component_name="WorkCampaignProgress")
class CampaignProgressSerializer(serializers.Serializer):
    campaign_id = serializers.IntegerField()
    items = serializers.IntegerField()
    items_complete = serializers.IntegerField()
    slots_total = serializers.IntegerField()
    remaining = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    awaiting_review = serializers.IntegerField()
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    skipped = serializers.IntegerField()
    expired = serializers.IntegerField()
    annotators = AnnotatorProgressSerializer(many=True)
    completions_by_day = serializers.ListField(child=serializers.DictField())


class CampaignProgressApi(APIView):
    """Reviewers of the campaign and admins: campaign totals and per-annotator figures."""

    permission_classes = [IsAuthenticated, IsReviewer]

    @extend_schema(responses=CampaignProgressSerializer)
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = _reviewable_campaign(request, campaign_id)
        totals = selectors.campaign_progress(campaign=campaign)
        data = {
            **totals.__dict__,
            "annotators": [p.__dict__ for p in selectors.annotator_progress(campaign=campaign)],
            "completions_by_day": [
                {"day": day.isoformat(), "count": n}
                for day, n in selectors.completions_by_day(campaign=campaign)
            ],
        }
        return Response(CampaignProgressSerializer(data).data)


class MyProgressApi(APIView):
    """The caller's own figures over all campaigns."""

    @extend_schema(responses=AnnotatorProgressSerializer)
    def get(self, request: Request) -> Response:
        rows = selectors.annotator_progress(annotator=request.user)
        if rows:
            return Response(AnnotatorProgressSerializer(rows[0]).data)
        empty = {"annotator_id": request.user.pk, "username": request.user.get_username()}
        empty |= {"items": 0, "accepted": 0, "rejected": 0, "active_seconds": 0}
        return Response({**empty, "items_per_hour": None})
