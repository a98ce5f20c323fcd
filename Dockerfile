# The model service: `reprotab serve` on port 8000 as user 10001, API keys required.
#   dvc pull models/model.zip   (or dvc repro)    # the model is copied into the image
#   docker build -t reprotab-serve .
#   reprotab serve keys add app --scope predict --scope read   # prints the key once
#   chmod 600 secrets/api-keys.json && sudo chown 10001 secrets/api-keys.json   # readable by user 10001 only
#   docker run --rm -p 127.0.0.1:8000:8000 \
#     -v "$PWD/secrets/api-keys.json:/run/secrets/reprotab-keys.json:ro" reprotab-serve
# Another model without rebuilding: also mount it over /app/models (-v "$PWD/models:/app/models:ro").
# Without a key file the command stops with exit status 2 (docs/operations/service.md).
# The Python tag matches the interpreter requirements.lock was tested with.

FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements-serve.lock /tmp/requirements-serve.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-deps -r /tmp/requirements-serve.lock

FROM python:3.11.7-slim-bookworm
# libgomp1: the OpenMP runtime LightGBM and XGBoost load.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 reprotab \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin reprotab
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY reprotab/ /app/reprotab/
COPY models/model.zip models/model.json /app/models/
# the prediction log and the command's own log are the only places the service writes
RUN mkdir -p /app/logs /app/reports/logs && chown -R 10001:10001 /app/logs /app/reports
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
# the key file is mounted at run time (a bind mount or a secret), never baked into the image
CMD ["python", "-m", "reprotab", "serve", "--model", "/app/models/model.zip", "--host", "0.0.0.0", "--port", "8000", "--keys", "/run/secrets/reprotab-keys.json"]
