"""Export API under /api/v1/exports/ (admins only; everyone else gets 403).

POST `` starts a snapshot (a Celery job on the default queue), GET `` lists past ones,
GET `<id>/` shows one with its progress, GET `<id>/files/<name>` downloads a file of a
finished local snapshot (404 for names its manifest does not list).
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator_app.accounts.permissions import IsPlatformAdmin
from annotator_app.exports import selectors, services
from annotator_app.exports.models import Export, ExportFormat
from annotator_app.exports.sources import SOURCES
from annotator_app.exports.sources.base import STATUS_CHOICES


class ExportInputSerializer(serializers.Serializer):
    dataset = serializers.ChoiceField(choices=sorted(SOURCES))
    format = serializers.ChoiceField(choices=ExportFormat.values, default=ExportFormat.PARQUET)
    full = serializers.BooleanField(default=False)
    campaign = serializers.CharField(required=False, allow_blank=True, max_length=200)
    since = serializers.CharField(required=False, allow_blank=True, max_length=40)
    status = serializers.ChoiceField(choices=sorted(STATUS_CHOICES), default="accepted")
    images = serializers.BooleanField(default=False)
    count = serializers.IntegerField(required=False, min_value=1)
    seed = serializers.IntegerField(default=0)


class ExportOutputSerializer(serializers.ModelSerializer):
    rows_done = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id",
            "dataset",
            "format",
            "full",
            "filters",
            "include_images",
            "status",
            "rows_total",
            "rows_done",
            "location",
            "files",
            "code_version",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "manifest",
        ]

    def get_rows_done(self, export: Export) -> int:
        return selectors.export_rows_done(export=export)

    def get_files(self, export: Export) -> list[str]:
        return selectors.export_files(export=export)


def _get(export_id: str) -> Export:
    export = selectors.export_get(export_id=export_id)
    if export is None:
        raise NotFound("no such export")
    return export


class ExportListCreateApi(APIView):
    permission_classes = [IsPlatformAdmin]

    @extend_schema(responses=ExportOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(ExportOutputSerializer(selectors.exports_recent(), many=True).data)

    @extend_schema(request=ExportInputSerializer, responses={201: ExportOutputSerializer})
    def post(self, request: Request) -> Response:
        form = ExportInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data: dict[str, Any] = dict(form.validated_data)
        try:
            export = services.export_create(
                dataset=data["dataset"],
                format=data["format"],
                full=data["full"],
                campaign=data.get("campaign") or None,
                since=data.get("since") or None,
                status=data["status"],
                include_images=data["images"],
                count=data.get("count"),
                seed=data["seed"],
                user=request.user,
            )
        except services.ExportInvalid as exc:
            raise ValidationError({"detail": str(exc)}) from None
        services.export_enqueue(export=export)
        return Response(ExportOutputSerializer(export).data, status=status.HTTP_201_CREATED)


class ExportDetailApi(APIView):
    permission_classes = [IsPlatformAdmin]

    @extend_schema(responses=ExportOutputSerializer)
    def get(self, request: Request, export_id: str) -> Response:
        return Response(ExportOutputSerializer(_get(export_id)).data)


class ExportFileApi(APIView):
    permission_classes = [IsPlatformAdmin]

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, export_id: str, name: str) -> FileResponse:
        path = selectors.export_file_path(export=_get(export_id), name=name)
        if path is None:
            raise NotFound("no such file in this export")
        return FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=path.name,
            content_type="application/octet-stream",
        )
