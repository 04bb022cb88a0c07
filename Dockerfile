# Multi-stage build of the three binaries (ingest, consumer, api) in one small image.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential pkg-config zlib1g-dev libssl-dev libcurl4-openssl-dev python3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ingest -p consumer -p api \
    && mkdir -p /out && cp target/release/ingest target/release/consumer target/release/api /out/

FROM debian:bookworm-slim
# libssl3, libcurl4: librdkafka's TLS/SASL and OIDC; ca-certificates: the system CA store
# librdkafka uses when kafka.ssl_ca_location is unset.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl zlib1g libssl3 libcurl4 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 abtest
COPY --from=build /out/ /usr/local/bin/
USER abtest
EXPOSE 9000 9001 9002
CMD ["api"]
