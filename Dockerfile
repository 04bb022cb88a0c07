# Multi-stage build of the three binaries (ingest, consumer, api) in one small image.
# docker-compose.yml builds it once (the init service) and runs it as abtest:latest.
FROM rust:1-bookworm AS build
# What the crates build against (the same as scripts/lib.sh ensure_packages): rdkafka-sys
# compiles librdkafka with features ssl (libssl-dev) and curl (libcurl4-openssl-dev), and
# links zlib (zlib1g-dev); build-essential and pkg-config for its configure and the -sys
# crates; python3 for librdkafka's Makefile (its version string). No libsasl2-dev: SASL
# PLAIN, SCRAM and OAUTHBEARER are built into librdkafka, only GSSAPI (not enabled) needs
# Cyrus SASL. The build stage's packages do not reach the runtime image.
RUN apt-get update && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev libssl-dev libcurl4-openssl-dev python3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ingest -p consumer -p api \
    && mkdir -p /out && cp target/release/ingest target/release/consumer target/release/api /out/

FROM debian:bookworm-slim
# What the binaries link (readelf -d, NEEDED): libssl.so.3 and libcrypto.so.3 (libssl3:
# librdkafka's TLS and SASL SCRAM), libcurl.so.4 (libcurl4: librdkafka's OIDC token
# fetcher; its own dependencies come with it), libz.so.1, libgcc_s.so.1 and glibc (already
# in the base image). Nothing else. ca-certificates: the system CA store librdkafka
# uses when kafka.ssl_ca_location is unset. curl: the health checks of docker-compose.yml.
# A fixed numeric uid/gid, so that Kubernetes' runAsNonRoot can verify it and volume
# ownership can be set from outside the image.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl libssl3 libcurl4 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 abtest \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin abtest
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
EXPOSE 9000 9001 9002
CMD ["api"]
