# syntax=docker/dockerfile:1
# keda-llm-scaler: build with the pinned Rust toolchain, ship on distroless (glibc, no shell),
# as a non-root user. The build step is scripts/build-release.sh, the same script CI runs.
# Both stages are Debian 13 (trixie): the binary links the build image's glibc, so the runtime's
# must be the same release or newer. distroless cc-debian12 reached end of life in September 2026.
#   docker build -t <registry>/keda-llm-scaler:0.1.0 .

FROM docker.io/library/rust:1.95-trixie AS build
WORKDIR /src
# Manifest, lockfile and build script first: the dependency layer is cached across source edits.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY crates ./crates
COPY benches ./benches
COPY scripts/build-release.sh ./scripts/build-release.sh
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    bash scripts/build-release.sh \
 && install -D -m 0755 target/release/keda-llm-scaler /out/keda-llm-scaler

FROM gcr.io/distroless/cc-debian13:nonroot
COPY --from=build /out/keda-llm-scaler /usr/local/bin/keda-llm-scaler
# distroless "nonroot" is uid/gid 65532; the Deployment asserts the same.
USER 65532:65532
# gRPC (KEDA's scalerAddress) and HTTP (probes, /metrics, /debug).
EXPOSE 6000 8080
# Nothing is written to disk, so the root filesystem can be mounted read-only.
ENTRYPOINT ["/usr/local/bin/keda-llm-scaler"]
CMD ["serve"]
