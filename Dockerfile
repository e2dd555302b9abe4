# syntax=docker/dockerfile:1
# The `orderly` multi-call binary in a small, non-root runtime image; the Helm chart in
# deploy/helm runs it as `orderly <component>` and `orderly migrate <component>`.
#   docker build -t registry.example.com/orderly:0.1.0 .
#   docker run --rm registry.example.com/orderly:0.1.0 order --help

FROM rust:1.95-bookworm AS build
# Build-only: the system SQLite headers via pkg-config (see .cargo/config.toml), OpenSSL
# headers for Kafka TLS/SASL, and the C toolchain, perl and python3 that librdkafka's bundled
# build uses.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsqlite3-dev libssl-dev pkg-config gcc make perl python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache mounts keep downloaded crates and build artifacts between builds. They are not part
# of the image, so the binary is copied out of the target cache before the step ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/cache/target \
    CARGO_TARGET_DIR=/cache/target cargo build --release --locked --bin orderly \
 && install -D -m 0755 /cache/target/release/orderly /out/orderly

FROM debian:bookworm-slim
# The binary needs libc, libgcc and zlib (in the base image) and OpenSSL (librdkafka's TLS);
# TLS to PostgreSQL and Kafka needs the CA bundle.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 orderly \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin orderly
COPY --from=build /out/orderly /usr/local/bin/orderly
# Numeric, so Kubernetes' runAsNonRoot can check it; the chart's securityContext matches.
USER 10001:10001
# Relative data paths (the SQLite default) land in a writable place, never in /.
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/orderly"]
CMD ["--help"]
