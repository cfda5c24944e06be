"""Catalog API: admin imports, images and topics for every logged-in user."""

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

from annotator_app.accounts.permissions import IsPlatformAdmin
from annotator_app.catalog.import_jobs import ImportJobInvalid, import_job_create
from annotator_app.catalog.models import Image, ImportJob
from annotator_app.catalog.selectors import (
    image_get,
    image_list,
    image_media_url,
    topic_list,
    topics_by_slug,
)
from annotator_app.catalog.services import ImportTooLarge, TopicError, images_import, topic_create

# The API imports synchronously inside one request: keep it to a handful.
API_MAX_SOURCES = 10
API_MAX_ITEMS = 50
API_SOURCE_SCHEMES = ("http://", "https://", "s3://")


class ImageOutputSerializer(serializers.ModelSerializer):
    topics: Any = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = ["id", "sha256", "width", "height", "format", "mime", "size_bytes"]
        fields += ["topics", "url", "created_at"]

    def get_url(self, image: Image) -> str:
        return image_media_url(image=image, request=self.context.get("request"))


class ImportApi(APIView):
    """Import a few URLs / s3:// prefixes now; bulk imports use `manage.py import_images`."""

    permission_classes = [IsAuthenticated, IsPlatformAdmin]

    @extend_schema_serializer(component_name="CatalogImportInput")
    class InputSerializer(serializers.Serializer):
        sources = serializers.ListField(child=serializers.CharField(max_length=2048))
        topics = serializers.ListField(child=serializers.SlugField(), required=False, default=list)

        def validate_sources(self, sources: list[str]) -> list[str]:
            if not sources:
                raise ValidationError("give at least one source")
            if len(sources) > API_MAX_SOURCES:
                raise ValidationError(
                    f"at most {API_MAX_SOURCES} sources per request (got {len(sources)}); "
                    "use `manage.py import_images` for bulk imports"
                )
            for source in sources:
                if not source.strip().lower().startswith(API_SOURCE_SCHEMES):
                    raise ValidationError(f"{source!r}: only http(s):// URLs and s3:// URIs")
            return sources

        def validate_topics(self, slugs: list[str]) -> list[Any]:
            found = topics_by_slug(slugs=slugs)
            missing = sorted(set(slugs) - {t.slug for t in found})
            if missing:
                raise ValidationError(f"unknown topics: {', '.join(missing)}")
            return found

    @extend_schema_serializer(component_name="CatalogImportSummary")
    class OutputSerializer(serializers.Serializer):
        @extend_schema_serializer(component_name="CatalogImportItem")
        class ItemSerializer(serializers.Serializer):
            # Field has a `source` attribute of its own; the output key is still "source".
            source = serializers.CharField()  # type: ignore[assignment]
            status = serializers.CharField()
            image_id = serializers.IntegerField(source="image.id", allow_null=True, default=None)
            reason = serializers.CharField()

        counts = serializers.DictField(child=serializers.IntegerField())
        items = ItemSerializer(source="outcomes", many=True)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            summary = images_import(
                sources=data.validated_data["sources"],
                topics=data.validated_data["topics"],
                created_by=request.user,
                allow_local_paths=False,
                max_items=API_MAX_ITEMS,
            )
        except ImportTooLarge as exc:
            raise ValidationError({"sources": [str(exc)]}) from None
        return Response(self.OutputSerializer(summary).data)


class ImportJobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    total = serializers.IntegerField(allow_null=True)
    done = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField())
    error = serializers.CharField()
    outcomes = serializers.ListField(child=serializers.DictField())


def _many(data: Any, key: str) -> list[Any]:
    """Every value of `key` in a form (repeated fields) or a JSON body (a list)."""
    if hasattr(data, "getlist"):
        return list(data.getlist(key))
    value = data.get(key, []) if isinstance(data, dict) else []
    return value if isinstance(value, list) else [value]


class ImportJobCreateApi(APIView):
    """Start a background import of uploaded files and/or URLs (multipart); 202 + the job."""

    permission_classes = [IsAuthenticated, IsPlatformAdmin]

    @extend_schema_serializer(component_name="CatalogImportJobInput")
    class InputSerializer(serializers.Serializer):
        image_files = serializers.ListField(child=serializers.FileField(), required=False)
        urls = serializers.ListField(
            child=serializers.CharField(max_length=2048), required=False, default=list
        )
        topics = serializers.ListField(child=serializers.SlugField(), required=False, default=list)

        def validate_topics(self, slugs: list[str]) -> list[Any]:
            found = topics_by_slug(slugs=slugs)
            missing = sorted(set(slugs) - {t.slug for t in found})
            if missing:
                raise ValidationError(f"unknown topics: {', '.join(missing)}")
            return found

    @extend_schema(request=InputSerializer, responses={202: ImportJobOutputSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(
            data={
                "image_files": request.FILES.getlist("image_files"),
                "urls": _many(request.data, "urls"),
                "topics": _many(request.data, "topics"),
            }
        )
        data.is_valid(raise_exception=True)
        try:
            job = import_job_create(
                created_by=request.user,
                urls=data.validated_data["urls"],
                files=data.validated_data.get("image_files", []),
                topics=data.validated_data["topics"],
            )
        except ImportJobInvalid as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(ImportJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ImportJobDetailApi(APIView):
    """An import's progress: items done of total, counts, one outcome per item."""

    permission_classes = [IsAuthenticated, IsPlatformAdmin]

    @extend_schema(responses=ImportJobOutputSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        job = ImportJob.objects.filter(pk=job_id).first()
        if job is None:
            raise NotFound("no such import")
        return Response(ImportJobOutputSerializer(job).data)


class ImageListApi(APIView):
    @extend_schema(responses=ImageOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        images = image_list(topic_slug=request.query_params.get("topic"))
        page = paginator.paginate_queryset(images, request, view=self)
        context = {"request": request}
        return paginator.get_paginated_response(
            ImageOutputSerializer(page, many=True, context=context).data
        )


class ImageDetailApi(APIView):
    @extend_schema(responses=ImageOutputSerializer)
    def get(self, request: Request, image_id: int) -> Response:
        image = image_get(image_id=image_id)
        if image is None:
            raise NotFound("no such image")
        return Response(ImageOutputSerializer(image, context={"request": request}).data)


class TopicListCreateApi(APIView):
    """Everyone logged in lists topics; only admins create them."""

    @extend_schema_serializer(component_name="CatalogTopicInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        slug = serializers.SlugField(max_length=100, required=False, default="")

    @extend_schema_serializer(component_name="CatalogTopic")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        slug = serializers.CharField()

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method == "POST":
            return [IsAuthenticated(), IsPlatformAdmin()]
        return [IsAuthenticated()]

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(topic_list(), many=True).data)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            topic = topic_create(**data.validated_data)
        except TopicError as exc:
            raise ValidationError({"name": [str(exc)]}) from None
        return Response(self.OutputSerializer(topic).data, status=status.HTTP_201_CREATED)
