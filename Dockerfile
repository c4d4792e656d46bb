# LoRA Trainer Bot: one process (Discord gateway + embedded web server on 8080).
#   docker build -t lora-trainer-bot .
#   docker run -d --name lora-trainer-bot -v lora-data:/data --env-file .env -p 127.0.0.1:8080:8080 lora-trainer-bot
#   docker exec lora-trainer-bot python -m bot doctor
# Put a TLS reverse proxy in front of 8080 and set PUBLIC_URL to its https address (no port).
# The base image is pinned to the Python the lock file was compiled and tested with (CI runs the
# pip steps below from requirements.lock in a fresh venv: .ci/docker-steps).
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The exact, hash-checked versions of every dependency (and of setuptools, to build the bot), in a
# layer of their own: a code change reuses it instead of downloading everything again.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements.lock

# Only what the package needs (see .dockerignore); nothing more is downloaded from here on.
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
COPY cogs ./cogs
COPY storage ./storage
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && rm -rf build ./*.egg-info \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin bot \
    && mkdir -p /data /datasets \
    && chown bot:bot /data /datasets

# The database, the generated secret.key and cached datasets live in /data: keep it on a volume.
# /datasets is owned by the bot so a volume shared by several processes (DATASETS_DIR) starts writable.
ENV DATA_DIR=/data \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080
VOLUME ["/data"]
EXPOSE 8080
# By number: a host (or Kubernetes' runAsNonRoot) can check it without the image's /etc/passwd.
USER 10001:10001

# The slim image has no curl: ask /healthz with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/healthz' % os.environ.get('HTTP_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

CMD ["python", "-m", "bot"]
