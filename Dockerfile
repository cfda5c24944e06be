# Image of the web server, the Celery workers and beat (see docker-compose.yml).
# The Django side never imports torch (the model service is its own image), so the
# pinned CPU build of torch in requirements.txt is left out here.

FROM node:20-slim AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim
ARG PIP_INDEX_URL=""
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_FIND_LINKS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIXMO_VAR_DIR=/app/var \
    MEDIA_ROOT=/data/media \
    DJANGO_SETTINGS_MODULE=annotator_app.settings.production
WORKDIR /app

# --no-deps: requirements.txt is a complete freeze; resolving again would try to build
# llama-cpp-python from source.
COPY requirements.txt ./
RUN grep -v '^torch==' requirements.txt > /tmp/requirements-web.txt \
    && pip install --no-deps -r /tmp/requirements-web.txt

COPY . .
COPY --from=frontend /src/frontend/dist frontend/dist

# The secret here exists only for this one command and is not kept in the image.
RUN SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost \
        python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --create-home --uid 10001 pixmo \
    && mkdir -p /data/media /exports \
    && chown -R pixmo /data /exports /app/var

USER pixmo
EXPOSE 8000
CMD ["gunicorn", "annotator_app.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
