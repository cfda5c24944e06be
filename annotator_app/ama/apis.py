"""AMA API under /api/v1/ama/: read a session; ask, accept, reject, retry, skip.

Object rules: only the session's annotator acts on it (anyone else's id is 404); its
annotator, the reviewers of its campaign and admins may read it (404 for everyone else).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotator_app.ama import selectors, services
from annotator_app.ama.serializers import (
    AcceptInputSerializer,
    AskInputSerializer,
    RejectInputSerializer,
    SessionOutputSerializer,
    SkipInputSerializer,
)


def _session_data(user: Any, session_id: int) -> dict[str, Any]:
    session = selectors.session_get_visible(user=user, session_id=session_id)
    if session is None:
        raise NotFound("no such AMA session")
    return dict(SessionOutputSerializer(session).data)


class SessionDetailApi(APIView):
    @extend_schema(responses=SessionOutputSerializer)
    def get(self, request: Request, session_id: int) -> Response:
        return Response(_session_data(request.user, session_id))


class AskApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(request=AskInputSerializer, responses={201: SessionOutputSerializer})
    def post(self, request: Request, session_id: int) -> Response:
        form = AskInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.ama_ask(
            user=request.user, session_id=session_id, question=form.validated_data["question"]
        )
        return Response(_session_data(request.user, session_id), status=status.HTTP_201_CREATED)


class SkipApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(request=SkipInputSerializer, responses=SessionOutputSerializer)
    def post(self, request: Request, session_id: int) -> Response:
        form = SkipInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.ama_skip(
            user=request.user, session_id=session_id, reason=form.validated_data["reason"]
        )
        return Response(_session_data(request.user, session_id))


def _session_of_round(request: Request, round_id: int) -> int:
    found = selectors.round_session_id_own(user=request.user, round_id=round_id)
    if found is None:
        raise NotFound("no such AMA round")
    return found


class AcceptApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(request=AcceptInputSerializer, responses=SessionOutputSerializer)
    def post(self, request: Request, round_id: int) -> Response:
        session_id = _session_of_round(request, round_id)
        form = AcceptInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.ama_accept(
            user=request.user,
            round_id=round_id,
            active_seconds=form.validated_data.get("active_seconds"),
        )
        return Response(_session_data(request.user, session_id))


class RejectApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(request=RejectInputSerializer, responses={201: SessionOutputSerializer})
    def post(self, request: Request, round_id: int) -> Response:
        session_id = _session_of_round(request, round_id)
        form = RejectInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.ama_reject(
            user=request.user, round_id=round_id, feedback=form.validated_data["feedback"]
        )
        return Response(_session_data(request.user, session_id), status=status.HTTP_201_CREATED)


class RetryApi(APIView):
    @extend_schema(request=None, responses=SessionOutputSerializer)
    def post(self, request: Request, round_id: int) -> Response:
        session_id = _session_of_round(request, round_id)
        services.ama_retry(user=request.user, round_id=round_id)
        return Response(_session_data(request.user, session_id))
