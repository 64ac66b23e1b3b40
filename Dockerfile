# syntax=docker/dockerfile:1
# kube-haproxy: the sidecar (`run`, the default) and the init step (`render`) of deploy/.
# Node 24 runs the TypeScript sources directly: there is no build step.

# Production dependencies only, from the lockfile. --ignore-scripts: no dependency needs an
# install script, and test/deploy.test.ts runs the entrypoint with exactly this install.
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-slim
# Debian's haproxy, for `haproxy -c` only: the sidecar validates every configuration it writes
# before it asks HAProxy to reload (--haproxy-binary). The data plane is the haproxy container.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric non-root user, so that runAsNonRoot can be verified and the uid/gid match
# deploy/daemonset.yaml (gid 10001 is the group that shares HAProxy's sockets).
RUN groupadd --system --gid 10001 kube-haproxy \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin kube-haproxy
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src/ ./src/
USER 10001:10001
ENTRYPOINT ["node", "/app/src/cli.ts"]
CMD ["run"]
