#!/usr/bin/env bash
# Demo secrets for docker-compose.yml: a self-signed HTTPS certificate and one admin
# identity, in deploy/compose/secrets/. For a demo only: a hospital uses a certificate of
# its own CA and tokens made with `jicai-gateway token new`.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p secrets
if [ ! -f secrets/http.key ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=jicai-gateway" \
        -addext "subjectAltName=DNS:gateway,DNS:localhost,IP:127.0.0.1" \
        -keyout secrets/http.key -out secrets/http.crt 2>/dev/null
fi
if [ ! -f secrets/identities.yaml ]; then
    token=$(openssl rand -hex 32)
    hash=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
    printf -- '- name: demo-admin\n  role: admin\n  token_sha256: %s\n' "$hash" \
        > secrets/identities.yaml
    echo "admin token (keep it; only its hash is stored): $token"
fi
# the gateway runs as uid 10001 in the container and must read them
chmod 644 secrets/http.crt secrets/identities.yaml
chmod 644 secrets/http.key
