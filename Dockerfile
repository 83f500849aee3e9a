# Breakwater gateway image. Build: podman build --format docker -t breakwater .
# Run:   podman run -p 8080:8080 breakwater                      (the bundled demo)
#        podman run -p 8080:8080 -v ./config:/config breakwater serve --config /config/breakwater.yaml --host 0.0.0.0

FROM node:20-bookworm-slim AS build
WORKDIR /app
# onnxruntime-node's postinstall would fetch CUDA libraries (the CPU build ships in the package).
# npm 11 skips it (package.json allowScripts); this image's npm 10 ignores allowScripts, so say it here.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY gateway gateway
COPY adapters adapters
COPY policies policies
COPY loadtests loadtests
COPY test test
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
COPY bin bin
COPY demo demo
# The demo writes its development signing key here on first start.
RUN mkdir -p /app/.breakwater && chown node:node /app/.breakwater
# Never run as root; the node image ships an unprivileged `node` user.
USER node
EXPOSE 8080
# Inside a container the gateway must listen beyond loopback; outside one, loopback stays the default.
ENTRYPOINT ["node", "bin/breakwater.js"]
CMD ["serve", "--demo", "--host", "0.0.0.0"]
