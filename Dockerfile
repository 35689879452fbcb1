# syntax=docker/dockerfile:1
# The talea service images, built from one builder stage:
#
#   docker build --target talead      -t talea/talead .
#   docker build --target talea-relay -t talea/talea-relay .
#   docker build --target talea-fanout -t talea/talea-fanout .
#   docker build --target talea-scope -t talea/talea-scope .
#
# (docker-compose.yml builds all four.) The builder compiles every service
# package present under services/; a target whose service does not exist yet
# fails at its COPY, naming the missing binary.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
ARG SERVICES="talead talea-relay talea-fanout talea-scope"
WORKDIR /src
COPY . .
# Cargo's registry and target directory are cache mounts, so a rebuild only
# compiles what changed; the binaries are copied out of the cache in the same
# step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eu; \
    packages=""; \
    for s in $SERVICES; do \
        if [ -d "services/$s" ]; then packages="$packages -p $s"; \
        else echo "services/$s does not exist yet: not built"; fi; \
    done; \
    cargo build --release --locked $packages; \
    mkdir -p /out; \
    for s in $SERVICES; do \
        if [ -x "target/release/$s" ]; then cp "target/release/$s" /out/; fi; \
    done; \
    ls -l /out

# Common runtime: a small Debian, CA certificates (TLS to Postgres and NATS),
# curl for compose healthchecks, and an unprivileged user whose numeric id
# the Kubernetes restricted profile can verify (runAsNonRoot).
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 talea \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/talea --create-home talea
USER 10001:10001
WORKDIR /var/lib/talea
# In a container the service must listen beyond loopback.
ENV TALEA_BIND=0.0.0.0:8080 \
    TALEA_LOG_FORMAT=json

FROM runtime AS talead
COPY --from=builder /out/talead /usr/local/bin/talead
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/talead"]
CMD ["serve"]

FROM runtime AS talea-relay
COPY --from=builder /out/talea-relay /usr/local/bin/talea-relay
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/talea-relay"]

FROM runtime AS talea-fanout
COPY --from=builder /out/talea-fanout /usr/local/bin/talea-fanout
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/talea-fanout"]

FROM runtime AS talea-scope
COPY --from=builder /out/talea-scope /usr/local/bin/talea-scope
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/talea-scope"]
