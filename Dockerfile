# Slim image running `jicai-gateway serve`, as a non-root user, with a health check.
FROM python:3.11-slim AS build
# a C compiler for the mypyc-compiled parsing modules (setup.py); not in the final image
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY gateway gateway
COPY adapters adapters
COPY mappings mappings
COPY codes codes
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[pg]'

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /srv/gateway --create-home gateway
WORKDIR /srv/gateway
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY --chown=gateway:gateway config config
USER gateway
ENV PYTHONUNBUFFERED=1 JCGW_BIND=0.0.0.0
# MLLP 2575, HTTP (health, metrics, FHIR, CDS Hooks) 8080, simulator 8090 (demo only)
EXPOSE 2575 8080
VOLUME ["/srv/gateway/var"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["jicai-gateway"]
CMD ["serve", "-c", "config/gateway.yaml"]
