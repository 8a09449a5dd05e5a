# syntax=docker/dockerfile:1
#
# The one Echo image every environment runs (deploy/README.md): `echoai` on distroless, as a
# non-root numeric user, on a read-only root filesystem. Staging and production differ only in
# the environment they pass in.
#
#   docker build -t echo:dev .
#   docker run --rm -p 8080:8080 --read-only --tmpfs /tmp -v echo-state:/var/lib/echo echo:dev
#
# Dependencies are compiled in their own layer (cargo-chef, from crates.io), so a change to
# Echo's sources rebuilds only Echo's crates.

ARG RUST_VERSION=1.95
# The toolchain and the runtime share Debian 12 (glibc 2.36). The binary needs glibc and
# libgcc_s only (`ldd` in deploy/README.md): rustls, not OpenSSL; SQLite is compiled in.
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install --locked cargo-chef --version "${CARGO_CHEF_VERSION}"
WORKDIR /src
# Stripped symbols make a smaller image; a panic's message still names its file and line.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never

# The recipe is the workspace's manifests and lock file with the sources blanked out: it changes
# only when dependencies do, so the `cook` layer below stays cached across source edits.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json \
        -p echo-server-example --bin echoai
COPY . .
# Writable state (mail outbox, audit archives, a default SQLite file) lives in one directory,
# made here because the runtime image has no shell; it becomes the image's only VOLUME.
RUN cargo build --release --locked -p echo-server-example --bin echoai \
    && install -D -m 0755 target/release/echoai /out/usr/local/bin/echoai \
    && install -d -m 0750 /out/var/lib/echo

# base-nossl (glibc, CA certificates, tzdata) plus libgcc_s from the builder, rather than
# distroless/cc, whose libssl, libstdc++ and libgomp echoai never loads: about 8 MB less, which
# keeps the image under its 40 MB budget. The library path is amd64's (the image CI builds).
FROM gcr.io/distroless/base-nossl-debian12:nonroot AS runtime
# distroless's "nonroot" user; numeric so that `runAsNonRoot` can verify it without /etc/passwd.
USER 65532:65532
COPY --from=builder /lib/x86_64-linux-gnu/libgcc_s.so.1 /lib/x86_64-linux-gnu/libgcc_s.so.1
COPY --from=builder /out/usr/local/bin/echoai /usr/local/bin/echoai
COPY --from=builder --chown=65532:65532 /out/var/lib/echo /var/lib/echo
WORKDIR /var/lib/echo
ENV ECHO_LISTEN=0.0.0.0:8080 \
    ECHO_LOG_FORMAT=json \
    ECHO_OUTBOX_DIR=/var/lib/echo/outbox \
    ECHO_AUDIT_ARCHIVE_DIR=/var/lib/echo/audit-archive
VOLUME ["/var/lib/echo"]
EXPOSE 8080
# `echoai serve` drains in-flight requests and jobs on SIGTERM (ECHO_SHUTDOWN_GRACE_SECS).
STOPSIGNAL SIGTERM
# No shell in distroless: the binary probes itself (exit 0 on a 2xx).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/echoai", "probe", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/echoai"]
CMD ["serve"]
