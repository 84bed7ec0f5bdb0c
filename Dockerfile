# syntax=docker/dockerfile:1
# Multi-stage build of kgen-gateway. The build step is exactly the release build .ci/run performs.
# No protoc is needed: build.rs compiles the proto with protox.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

# distroless "cc" has glibc and libgcc (which the binary needs) and nothing else; TLS roots are compiled in
# (webpki-roots), so no CA bundle is needed either.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kgen-gateway /usr/local/bin/kgen-gateway
# The distroless nonroot user, numerically, so Kubernetes can verify runAsNonRoot.
USER 65532:65532
ENV KGEN_GATEWAY_LISTEN=0.0.0.0:50051 \
    KGEN_LOG_FORMAT=json
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/kgen-gateway"]
