# syntax=docker/dockerfile:1
# kube-haproxy: one image for the three containers of deploy/: the init step (`render`), the
# sidecar (`run`, the default) and HAProxy itself (deploy/ runs `haproxy` with this image), so
# the `haproxy -c` that checks every configuration before a reload is the very HAProxy that
# runs the data plane. It is the official HAProxy image of a pinned version with Node 24 added.
# Node runs the TypeScript sources directly: there is no build step.
#
# The HAProxy version lives here; deploy/base/kustomization.yaml names the image by a tag ending in
# the same version (test/deploy.test.ts checks that they agree).
ARG HAPROXY_VERSION=3.4.0

# Production dependencies only, from the lockfile. --ignore-scripts: no dependency needs an
# install script, and test/deploy.test.ts runs the entrypoint with exactly this install.
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-slim AS node

FROM haproxy:${HAPROXY_VERSION}
USER root
# Node's one binary (glibc, libstdc++: both in the Debian base of the haproxy image); npm stays out.
COPY --from=node /usr/local/bin/node /usr/local/bin/node
# nft for local mode's capture (the sidecar, `capture`, `cleanup`); unused in onlyfetch.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nftables \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric non-root user, so that runAsNonRoot can be verified and the uid/gid match
# deploy/base/daemonset.yaml (gid 10001 is the group that shares HAProxy's sockets).
RUN groupadd --system --gid 10001 kube-haproxy \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin kube-haproxy
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src/ ./src/
USER 10001:10001
# The haproxy base image stops with SIGUSR1 (HAProxy's soft stop), on which Node would open its
# debugger instead of stopping. This image stops with SIGTERM; the DaemonSet's haproxy container
# asks HAProxy for its soft stop in a preStop hook instead.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/src/main.js"]
CMD ["run"]
