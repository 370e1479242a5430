# weft's one image: weft (CLI, and `weft iptables` for the injected init
# container), weft-control and weft-proxy, with the packet filters that
# `weft iptables` drives. The Helm chart (charts/weft) runs weft-control
# from it, and injected pods run weft-proxy and `weft iptables` from it.
#
#   docker build -t ghcr.io/weftmesh/weft:dev .
#   kind load docker-image ghcr.io/weftmesh/weft:dev      # a kind cluster
#
# Static, pure-Go binaries (CGO_ENABLED=0) without gRPC's x/net/trace
# (grpcnotrace), as `make build`.
FROM golang:1.26-trixie AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -tags grpcnotrace -trimpath -ldflags "-s -w" -o /out/ ./cmd/weft ./cmd/weft-control ./cmd/weft-proxy

FROM debian:trixie-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables nftables ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
# 1337 is Istio's proxy UID: the capture rules exclude it, and the
# injected sidecar and weft-control's Deployment run as it.
USER 1337:1337
ENTRYPOINT []
CMD ["weft", "version"]
