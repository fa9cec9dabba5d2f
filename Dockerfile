# One image for every Agora process; the command picks which one runs:
#   python -m services.<auth|communities|posts|comments|votes|summarizer>
#   python -m gateway                     (the default)
#   python -m tools.migrate [bootstrap]   (the migration job; bootstrap also makes roles/schemas)
#
# Build:  DOCKER_BUILDKIT=1 docker build -t agora:dev .
# Behind a TLS-inspecting proxy, hand pip the CA bundle as a build secret (never a layer):
#   docker build --secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt -t agora:dev .
# Another Debian bookworm base with Python 3.11 (a mirror, a hardened image):
#   docker build --build-arg BASE_IMAGE=registry.example.com/python:3.11-slim-bookworm ...
# See docs/operations.md.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- builder
FROM ${BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DEFAULT_TIMEOUT=120

WORKDIR /src

# The runtime venv, and a throwaway one for build-only tools (the mypy-protobuf
# plugins gen_protos.py runs), so nothing of the build ships.
RUN python3 -m venv /opt/venv && python3 -m venv /opt/buildtools

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only
# when the dependencies change, not on every code change.
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca_bundle \
    set -eu; \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; \
    /opt/venv/bin/python -c 'import tomllib; \
project = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
print("\n".join(project["dependencies"]))' > /tmp/requirements.txt; \
    /opt/venv/bin/python -c 'import tomllib; \
dev = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["dev"]; \
print("\n".join(d for d in dev if d.startswith("mypy-protobuf")))' > /tmp/build-requirements.txt; \
    /opt/venv/bin/pip install -r /tmp/requirements.txt; \
    /opt/buildtools/bin/pip install -r /tmp/build-requirements.txt; \
    /opt/venv/bin/pip uninstall --yes pip setuptools

# Generated gRPC code, made the one way there is (tools/gen_protos.py).
COPY protos ./protos
COPY tools/gen_protos.py ./tools/gen_protos.py
RUN PATH="/opt/buildtools/bin:${PATH}" /opt/venv/bin/python tools/gen_protos.py

# The code's folders on the venv's path, as the editable install does in
# development, so `python -m ...` works from any directory.
RUN printf '/app\n/app/gen\n' > "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/agora.pth"

# ---------------------------------------------------------------- runtime
FROM ${BASE_IMAGE} AS runtime

LABEL org.opencontainers.image.title="agora" \
      org.opencontainers.image.description="Agora: every service, the gateway and the migration job" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONFAULTHANDLER=1 \
    AGORA_GRPC_HOST=0.0.0.0 \
    AGORA_GATEWAY_HOST=0.0.0.0

# A fixed, unprivileged uid/gid that Kubernetes' runAsNonRoot can verify.
RUN groupadd --gid 10001 agora \
    && useradd --uid 10001 --gid agora --no-create-home --no-log-init \
       --home-dir /nonexistent --shell /usr/sbin/nologin agora

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY --from=builder /src/gen ./gen
COPY pyproject.toml ./
COPY common ./common
COPY gateway ./gateway
COPY services ./services
COPY tools ./tools

# Bytecode compiled now, as root: at run time /app is read-only to the
# process (and the root filesystem may be). .secrets is where a development
# auth service keeps the key it generates (compose mounts a volume there);
# production passes AGORA_AUTH_SIGNING_KEY(_FILE) instead.
RUN python -m compileall -q /app \
    && install -d -o agora -g agora -m 0700 /app/.secrets

USER 10001:10001

# gateway HTTP, the services' gRPC ports and their /metrics ports (common/topology.py).
EXPOSE 5000 50051-50056 9101-9106

# tools.healthcheck finds the process this container runs (gRPC health for a
# service, /healthz for the gateway); see its docstring.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "tools.healthcheck"]

STOPSIGNAL SIGTERM
CMD ["python", "-m", "gateway"]
