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
ENV PYTHONUNBUFFERED=1
# MLLP 2575 (allow-listed: JCGW_MLLP_ALLOW_FROM), HTTPS 8080 (health, metrics, FHIR,
# CDS Hooks, API; tokens from the identities file); see config/container.yaml
EXPOSE 2575 8080
VOLUME ["/srv/gateway/var"]
# the gateway's own certificate may be the hospital's internal CA's: the probe, on
# loopback, checks that it answers, not who it is
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import ssl,sys,urllib.request as u; sys.exit(0 if u.urlopen('https://127.0.0.1:8080/healthz', timeout=2, context=ssl._create_unverified_context()).status == 200 else 1)"
ENTRYPOINT ["jicai-gateway"]
CMD ["serve", "-c", "config/container.yaml"]
