# One image for the controller, the agent and the CLI:
#   docker run IMAGE controller ... | agent ... | compile ... | explain ...
# Node 24 runs the TypeScript sources directly (type stripping): no build step, no dist/.
#
# The development machines have no Docker engine: CI builds the same image without Docker
# (hack/tools/operator-image.sh, from Debian packages and the npm `node` package) and
# test/node/image.test.ts compares this file's final stage with it (user, working directory,
# environment, entrypoint, every copied file). Change both together. Pin NODE_IMAGE by digest when
# you publish.
ARG NODE_IMAGE=node:24-bookworm-slim
# The same release with a C compiler and Node's headers, for the agent's one native addon.
ARG NODE_BUILD_IMAGE=node:24-bookworm

# Production dependencies only, installed exactly as package-lock.json says, with the repository's
# .npmrc (strict-allow-scripts: no dependency runs an install script).
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev && npm cache clean --force

# The agent's malloc_trim addon (native/malloc-trim.c, docs/scale.md): one C file, built as
# hack/tools/malloc-trim.sh builds it for the tests.
FROM ${NODE_BUILD_IMAGE} AS native
WORKDIR /build
COPY native ./native
RUN native/build.sh /usr/local/include/node malloc-trim.node

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=native /build/malloc-trim.node ./native/malloc-trim.node
COPY package.json ./
COPY bin ./bin
COPY src ./src
# The vendored Sigstore public-good trust material `imagepolicy import` reads.
COPY config/sigstore ./config/sigstore
# Node's compile cache, filled now: every process reads the sources already stripped of their
# types instead of loading the type stripper (~17 MiB resident per process, docs/scale.md).
# `--help` loads each command's modules. Read-only at run time, which Node accepts.
ENV NODE_COMPILE_CACHE=/app/.node-compile-cache
RUN node src/cli/main.ts agent --help >/dev/null && node src/cli/main.ts controller --help >/dev/null
# Non-root by default (numeric, so Kubernetes can verify runAsNonRoot). The controller runs as
# this user; the agent DaemonSet overrides it to root to write root-owned host directories
# (config/agent/daemonset.yaml says why).
USER 65532:65532
ENTRYPOINT ["node", "/app/src/cli/main.ts"]
