# syntax=docker/dockerfile:1
# ELSER inference service: gRPC on 50051, ES REST shim on 9200, Prometheus metrics on 9464.
# Build: docker build -t elser-inference:0.1.0 .   (needs PyPI at build time: dependencies and the default model)

FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Only what the wheel is built from: edits to tests, docs or deploy/ do not invalidate this layer.
COPY pyproject.toml README.md LICENSE ./
COPY server/ server/
COPY client/ client/
COPY gen/ gen/
# Non-editable, so the runtime stage gets the venv without the source tree. The default model is baked in; its
# download cache stays in this stage. The openvino extra (about 180 MB) gives ELSER_RUNTIME=auto bf16 on CPUs that
# have it natively and OpenVINO's fp32 (docs/operating.md, "Choosing backend and precision").
RUN pip install --no-cache-dir '/src[openvino]' \
    && elser-model fetch-default --cache /tmp/model-cache /models/repository


FROM python:3.11-slim-bookworm AS runtime

# A fixed numeric uid lets Kubernetes' runAsNonRoot verify the user without a passwd lookup.
RUN groupadd --system --gid 10001 elser \
    && useradd --system --uid 10001 --gid elser --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin elser \
    && install -d -o elser -g elser -m 0750 /data

COPY --from=build /opt/venv /opt/venv
COPY --from=build /models/repository /models/repository

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ELSER_GRPC_PORT=50051 \
    ELSER_DATA_DIR=/data \
    ELSER_MODEL_REPOSITORY=/models/repository

# Endpoint database and installed models: must outlive the container.
VOLUME ["/data"]
WORKDIR /data

EXPOSE 50051 9200 9464

USER 10001:10001

# The server drains on SIGTERM (health NOT_SERVING, ELSER_DRAIN_S, then ELSER_SHUTDOWN_GRACE_S for in-flight calls);
# `docker stop` needs a --time above their sum.
STOPSIGNAL SIGTERM

# Liveness of the process (health service ""); start-period covers model load. Readiness is the orchestrator's
# business (Kubernetes: grpc readinessProbe on elser.v1.InferenceService). The probe connects as the server's ELSER_*
# environment says (TLS, first API key); set the server's settings as env, not as arguments, so it sees them
# (mTLS also needs ELSER_HEALTHCHECK_CLIENT_CERT_FILE/_KEY_FILE: docs/operating.md).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-m", "elser_server.healthcheck", "--timeout-s", "4"]

ENTRYPOINT ["elser-server"]
