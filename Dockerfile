# One image for the API, the Celery workers and the one-shot migration (docker-compose.yml).
# The API never imports torch; the workers run each job's stages in a child process.
#   docker build -t grait-service .                                  # CUDA torch wheel
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu \
#                --build-arg GRAIT_EXTRAS= -t grait-service:cpu .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRAIT_DATA_DIR=/data \
    HF_HOME=/data/hf

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# torch first, from the chosen index (CUDA or CPU build), so the project install reuses it.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

WORKDIR /srv/grait
COPY pyproject.toml README.md alembic.ini ./
COPY grait_engine ./grait_engine
COPY app ./app
COPY worker ./worker
COPY grait_cli ./grait_cli
COPY migrations ./migrations
# Extras of the project to install: "gpu" (bitsandbytes, for runtime.quantization: 4bit) on
# the CUDA image; empty for the CPU image.
ARG GRAIT_EXTRAS=gpu
# Editable: app.db.migrate finds ./migrations next to the packages.
RUN pip install -e ".${GRAIT_EXTRAS:+[${GRAIT_EXTRAS}]}" \
    && useradd --uid 10001 --create-home grait \
    && mkdir -p /data \
    && chown grait /data

USER grait
VOLUME ["/data"]
EXPOSE 8000
CMD ["grait", "serve", "--host", "0.0.0.0", "--port", "8000"]
