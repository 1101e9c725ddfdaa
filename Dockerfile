# sealdrop container image: multi-stage, production dependencies only, non-root.
# Build:  docker build -t sealdrop .
# Run:    docker run -p 8080:8080 -p 2222:2222 -v sealdrop-data:/var/lib/sealdrop -v sealdrop-keys:/etc/sealdrop \
#           --stop-timeout 45 -e SEALDROP_SERVER__PUBLIC_BASE_URL=https://files.example.org sealdrop
# --stop-timeout: on SIGTERM the daemon lets transfers finish for server.shutdownTimeoutSeconds
# (30 s); Docker's default of 10 s would kill it in the middle.

FROM node:20-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 builds its native module from source when no prebuilt binary is reachable, and
# daemon/native/malloc-trim, daemon/native/cfb-sha1 and daemon/native/direct-io always do.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY daemon/patches daemon/patches
# Local optional dependencies (file:): the malloc_trim, cfb-sha1 and direct-io addons, compiled by node-gyp with the tools above.
COPY daemon/native daemon/native
COPY daemon/scripts daemon/scripts
COPY daemon/bin daemon/bin
COPY daemon/src daemon/src
COPY config config
COPY admin-ui admin-ui
COPY plugins plugins
COPY README.md tsconfig.json ./
# Installs production dependencies, applies daemon/patches (postinstall) and bundles dist/ (prepare).
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    SEALDROP_STORAGE__DATA_DIR=/var/lib/sealdrop \
    SEALDROP_CRYPTO__KEK_FILE=/etc/sealdrop/kek \
    SEALDROP_HTTP__HOST=0.0.0.0 \
    SEALDROP_HTTP__PORT=8080 \
    SEALDROP_SFTP__HOST=0.0.0.0 \
    SEALDROP_SFTP__PORT=2222
RUN groupadd --system sealdrop \
 && useradd --system --gid sealdrop --home-dir /var/lib/sealdrop --shell /usr/sbin/nologin sealdrop \
 && mkdir -p /var/lib/sealdrop /etc/sealdrop \
 && chown sealdrop:sealdrop /var/lib/sealdrop /etc/sealdrop \
 && chmod 0700 /var/lib/sealdrop /etc/sealdrop
WORKDIR /app
COPY --from=build /app /app
USER sealdrop
VOLUME ["/var/lib/sealdrop", "/etc/sealdrop"]
EXPOSE 8080 2222
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.SEALDROP_HTTP__PORT || 8080) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Logs go to stdout as JSON lines.
# One malloc arena, fixed thresholds and a 2 MiB trim threshold (README, "Memory").
ENV GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=2097152
ENTRYPOINT ["node", "--max-semi-space-size=1", "--heap-growing-percent=100", "--single-threaded-gc", "/app/daemon/bin/sealdrop.js"]
CMD ["serve"]
