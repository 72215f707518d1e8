# The orchestrator's image (docs/operations.md, "Containers"). Two stages over one base image: the build
# stage compiles better-sqlite3, the server and the dashboard; the runtime stage holds only what runs.
#
#   docker build -t aws-orchestrator .
#   podman build --format docker -t aws-orchestrator .      # docker format: OCI images drop HEALTHCHECK
#
# BASE: any Debian-based image with Node 22 (or 20.19+) and npm in /usr/local, as the official ones are.
ARG BASE=node:22-bookworm-slim

FROM ${BASE} AS build
WORKDIR /app
# better-sqlite3 compiles from source with python3, make and g++, which the slim images do not have.
RUN if ! command -v python3 >/dev/null || ! command -v make >/dev/null || ! command -v g++ >/dev/null; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
      && rm -rf /var/lib/apt/lists/*; \
    fi
# The dependencies in their own layer, kept until the lockfile changes (and npm's cache in a cache
# mount, kept across builds). Install scripts are off: the project's `prepare` would build before the
# sources are here, and on Node 22 npm also installs an optional peer of @strands-agents/sdk that it
# skips on Node 20 (@tobilu/qmd, engines node >= 22: node-llama-cpp and its kin, 700 MB, with install
# scripts of their own), which nothing here uses. The one package that needs its script is then built:
# better-sqlite3, compiled against this Node's own headers (npm_config_nodedir: nothing to download).
# The optional `ca` secret is a CA bundle for a TLS-intercepting proxy on the build's way to the npm
# registry (`--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt`); without it nothing is mounted
# there and Node uses its own roots.
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.npm,sharing=locked \
    export NODE_EXTRA_CA_CERTS=/run/secrets/ca npm_config_nodedir=/usr/local \
    && npm ci --ignore-scripts --no-audit --no-fund \
    && npm rebuild better-sqlite3 --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY web ./web
COPY scripts/build-agent-package.mjs ./scripts/
# Then the production dependencies only (--omit=optional drops that optional peer's tree, and
# pg-cloudflare, which Node does not use), without better-sqlite3's compile leftovers (its object files
# and SQLite's sources: 25 MB; the addon is build/Release/better_sqlite3.node), and without the
# standalone agent package the build also makes (it runs on devices: docs/agent.md).
RUN npm run build \
    && rm -rf dist/agent-package \
    && npm prune --omit=dev --omit=optional --no-audit --no-fund \
    && cd node_modules/better-sqlite3 && rm -rf deps src build/deps build/Release/obj build/Release/obj.target build/Release/.deps

FROM ${BASE}
# A user of its own (fixed ids, so that a volume's owner can be set from outside), owning only /data.
RUN groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid orchestrator --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin orchestrator \
    && mkdir /data && chown orchestrator:orchestrator /data && chmod 700 /data
WORKDIR /app
# Owned by root: the server reads its code and never writes it.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# HOST=0.0.0.0 puts the API in protected mode: the server refuses to start without authentication, so
# give it ADMIN_TOKEN (32+ characters, from a secret store, never baked in) or a stored API token.
# DATA_DIR holds the SQLite database; with DATABASE_URL (PostgreSQL) it stays empty.
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8000 DATA_DIR=/data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
# /healthz answers 200 while the process serves, on a leader and on a follower (plain HTTP or, with
# TLS_CERT, HTTPS with the server's own certificate). No curl in slim images: Node asks.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "require(process.env.TLS_CERT ? 'https' : 'http').get({ host: '127.0.0.1', port: process.env.PORT, path: '/healthz', rejectUnauthorized: false, timeout: 4000 }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1)).on('timeout', () => process.exit(1))"]
# Node is PID 1 (exec form, no shell in between): `docker stop` sends SIGTERM to it, and `serve` stops
# cleanly on it (the lease released on PostgreSQL, the write-ahead log folded in on SQLite).
# Other commands run the same way: `docker run --rm -v orchestrator-data:/data IMAGE token list`.
ENTRYPOINT ["node", "--max-semi-space-size=64", "dist/cli/main.js"]
CMD ["serve"]
