# flowd: a release binary with the Swift runtime linked in, built on the Swift toolchain image,
# run on slim Debian with the runtime packages of libmicrohttpd and mimalloc, and CA certificates.
# scripts/check-dockerfile lints this file (hadolint) and checks the binary's libraries (ldd).
#
#   docker build -t flowd .
#   docker run -p 8080:8080 -v flowd-data:/data -v flowd-docs:/docs flowd
#
# Debian packages are not pinned to versions: the base image tags pin the release (bookworm),
# and a pinned version disappears from the archive at its next security update.

FROM swift:6.3-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmicrohttpd-dev libmimalloc-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The dependencies in a layer of their own, fetched from the manifest alone (its versions are
# exact): a change of flowd's code builds from here, without fetching them again.
COPY Package.swift ./
RUN swift package resolve
# Tests/ too: the manifest names the test targets, and SwiftPM wants their folders.
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib --product flowd \
    && install -D -m 0755 "$(swift build -c release --static-swift-stdlib --show-bin-path)/flowd" /out/flowd

FROM debian:bookworm-slim
# libmicrohttpd12 brings what it links (GnuTLS and its libraries); the binary links zlib itself
# (HTTP compression; zlib1g is in the base image already, named here to say so) and mimalloc
# (libmimalloc2.0, its malloc: see docs/architecture.md); ca-certificates
# is for the LLM endpoint's TLS. No HTTP client: the health check speaks HTTP via bash's /dev/tcp.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmicrohttpd12 libmimalloc2.0 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 flowd \
    && useradd --system --uid 10001 --gid flowd --home-dir /app --no-create-home --shell /usr/sbin/nologin flowd \
    && mkdir -p /data /docs \
    && chown flowd:flowd /data /docs

COPY --from=build /out/flowd /usr/local/bin/flowd
COPY agents /app/agents

# Configuration is by environment alone (a flag on the command line would win).
ENV FLOWD_HOST=0.0.0.0 \
    FLOWD_PORT=8080 \
    FLOWD_AGENTS=/app/agents \
    FLOWD_DOCS=/docs \
    FLOWD_DATA=/data \
    FLOWD_DRAIN_TIMEOUT=30

USER 10001:10001
WORKDIR /app
VOLUME ["/data", "/docs"]
EXPOSE 8080

# Liveness: GET /healthz through bash's /dev/tcp (no curl in the image); 200 while the process
# serves, draining included. The port is flowd's own (PID 1): its --port when given, else
# FLOWD_PORT, else 8080.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/bin/bash", "-c", "port=${FLOWD_PORT:-8080}; set -- $(tr '\\0' ' ' </proc/1/cmdline); while [ $# -gt 0 ]; do case $1 in --port) port=$2 ;; --port=*) port=${1#--port=} ;; esac; shift; done; exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

# Exec form: flowd is PID 1 and gets the SIGTERM of `docker stop` itself (it drains, then
# exits 0); give `docker stop --time` more than FLOWD_DRAIN_TIMEOUT.
STOPSIGNAL SIGTERM
# No flag here: a flag would beat its variable, and the image is configured by environment
# alone (FLOWD_HOST=0.0.0.0 above).
ENTRYPOINT ["/usr/local/bin/flowd"]
CMD ["serve"]
