# openalgo-proxy: one image for every component (serve, feed, bus); the command picks the role.
# Build from the repository root: docker build -t openalgo-proxy .
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements/runtime.txt requirements/runtime.txt
RUN /opt/venv/bin/pip install -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin openalgo
COPY --from=build /opt/venv /opt/venv
# HEALTHCHECK_URL: each role's own health endpoint (the proxy's port by default; a feed's metrics port)
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HEALTHCHECK_URL=http://127.0.0.1:8765/healthz \
    OPENALGO_PROXY_FEED__CACHE_DIR=/tmp/openalgo-proxy-cache
USER 10001
EXPOSE 8765
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as r; sys.exit(r.urlopen(os.environ['HEALTHCHECK_URL'], timeout=2).status != 200)"]
ENTRYPOINT ["openalgo-proxy"]
CMD ["serve", "--host", "0.0.0.0"]
