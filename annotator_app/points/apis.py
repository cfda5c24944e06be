"""Points API under /api/v1/points/: submit, read and amend points; agreement; decisions.

Object rules: an annotator submits for and amends only their own assignments and
annotations (anyone else's id is 404); an annotation is readable by its annotator, the
reviewers of its campaign and admins (404 for everyone else).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator_app.accounts.permissions import IsReviewer
from annotator_app.points import selectors
from annotator_app.points.review import (
    ReviewError,
    review_accept_all,
    review_pick,
    review_reject,
)
from annotator_app.points.serializers import (
    AgreementFiguresSerializer,
    AmendInputSerializer,
    AnnotationOutputSerializer,
    DecisionInputSerializer,
    SubmitInputSerializer,
)
from annotator_app.points.services import points_amend, points_submit
from annotator_app.work.models import CampaignKind
from annotator_app.work.selectors import campaign_get, can_review_campaign


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


def _refuse_large_bodies(request: Request) -> None:
    # Before the body is parsed: a huge JSON document must not be read into memory.
    declared = request.META.get("CONTENT_LENGTH") or "0"
    limit = settings.POINTS_MAX_REQUEST_BYTES
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(
            f"the request is {declared} bytes; points requests may be at most {limit}"
        )


def _data(request: Request, annotation: Any) -> dict[str, Any]:
    return dict(AnnotationOutputSerializer(annotation, context={"request": request}).data)


class AnnotationListCreateApi(APIView):
    """POST: submit the points of one's leased assignment. GET: one's own submissions."""

    parser_classes = [JSONParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if request.method in ("POST", "PUT"):
            _refuse_large_bodies(request)
        super().initial(request, *args, **kwargs)

    @extend_schema(responses=AnnotationOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        rows = selectors.annotation_list_own(user=request.user)
        page = paginator.paginate_queryset(rows, request, self)
        data = AnnotationOutputSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        request=SubmitInputSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                location=OpenApiParameter.HEADER,
                required=True,
                description="Made once per image (a UUID); a retry sends the same key.",
            )
        ],
        responses={201: AnnotationOutputSerializer, 200: AnnotationOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        form = SubmitInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        result = points_submit(
            user=request.user,
            assignment_id=form.validated_data["assignment"],
            raw_labels=form.validated_data["labels"],
            idempotency_key=request.headers.get("Idempotency-Key", "").strip(),
            active_seconds=form.validated_data.get("active_seconds"),
        )
        annotation = selectors.annotation_get_visible(
            user=request.user, annotation_id=result.annotation.pk
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(_data(request, annotation), status=code)


class AnnotationDetailApi(APIView):
    """GET: one annotation (annotator, reviewers, admins). PUT: its annotator amends it."""

    parser_classes = [JSONParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if request.method == "PUT":
            _refuse_large_bodies(request)
        super().initial(request, *args, **kwargs)

    @extend_schema(responses=AnnotationOutputSerializer)
    def get(self, request: Request, annotation_id: int) -> Response:
        found = selectors.annotation_get_visible(user=request.user, annotation_id=annotation_id)
        if found is None:
            raise NotFound("no such points annotation")
        return Response(_data(request, found))

    @extend_schema(request=AmendInputSerializer, responses=AnnotationOutputSerializer)
    def put(self, request: Request, annotation_id: int) -> Response:
        form = AmendInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        points_amend(
            user=request.user,
            annotation_id=annotation_id,
            raw_labels=form.validated_data["labels"],
        )
        found = selectors.annotation_get_visible(user=request.user, annotation_id=annotation_id)
        return Response(_data(request, found))


class CampaignAgreementApi(APIView):
    """Reviewers of a points campaign and admins: its agreement figures, per annotator too."""

    permission_classes = [IsAuthenticated, IsReviewer]

    @extend_schema(responses=AgreementFiguresSerializer(many=True))
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = campaign_get(campaign_id=campaign_id)
        if (
            campaign is None
            or campaign.kind != CampaignKind.POINTS
            or not can_review_campaign(request.user, campaign)
        ):
            raise NotFound("no such campaign")
        totals = dict(selectors.agreement_by_campaign()).get(campaign)
        people = selectors.agreement_by_annotator(campaign=campaign)
        return Response(
            {
                "campaign": AgreementFiguresSerializer(totals).data if totals else None,
                "annotators": AgreementFiguresSerializer(people, many=True).data,
            }
        )


class DecisionApi(APIView):
    """Reviewers decide an item whose annotators disagreed: accept all, pick one, reject one."""

    permission_classes = [IsAuthenticated, IsReviewer]

    @extend_schema(request=DecisionInputSerializer, responses={204: None})
    def post(self, request: Request, agreement_id: int) -> Response:
        agreement = selectors.agreement_get_reviewable(user=request.user, agreement_id=agreement_id)
        if agreement is None:
            raise NotFound("no such item to review")
        form = DecisionInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        action = form.validated_data["action"]
        annotation_id = form.validated_data.get("annotation")
        if action != "accept_all" and annotation_id is None:
            raise ValidationError({"annotation": ["say which annotation"]})
        try:
            if action == "accept_all":
                review_accept_all(agreement=agreement, reviewer=request.user)
            elif action == "pick":
                review_pick(agreement=agreement, reviewer=request.user, annotation_id=annotation_id)
            else:
                review_reject(
                    agreement=agreement,
                    reviewer=request.user,
                    annotation_id=annotation_id,
                    reason=form.validated_data["reason"],
                )
        except ReviewError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(status=status.HTTP_204_NO_CONTENT)
