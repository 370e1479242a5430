# weft — build, test and benchmark.
GO ?= go
PKGS := ./...

.PHONY: all build test vet fmt-check unit bench bench-quick bench-test bench-control fuzz clean

all: build

# Static, pure-Go binaries (no libc; the pure-Go DNS resolver), without
# gRPC's x/net/trace (grpcnotrace: 2.6 MiB less idle RSS per proxy; see
# docs/PERFORMANCE.md "Memory").
BUILDFLAGS := -tags grpcnotrace
build:
	CGO_ENABLED=0 $(GO) build $(BUILDFLAGS) -o bin/ ./cmd/...

# test is the one command CI runs (.ci/run) and the README names.
test: fmt-check vet unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# Side-by-side proxy benchmark (weft-proxy, nginx, HAProxy); see bench/README.md.
# Extra flags: make bench BENCH_ARGS="--only nginx,haproxy --runs 3".
# A short run of every fuzz target (FUZZTIME each, default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./internal/proxy/codec/http1 -run '^$$' -fuzz '^FuzzReadRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/proxy/codec/http1 -run '^$$' -fuzz '^FuzzChunked$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/proxy/router -run '^$$' -fuzz '^FuzzRoute$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/proxy/bootstrap -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/proxy/listener/tlsinspect -run '^$$' -fuzz '^FuzzInspect$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/protoyaml -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/config -run '^$$' -fuzz '^FuzzDecodeFile$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/translate -run '^$$' -fuzz '^FuzzGenerate$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/translate -run '^$$' -fuzz '^FuzzAuthorizationPolicy$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/ca -run '^$$' -fuzz '^FuzzVerifyToken$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/proxy/jwtauthn -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/proxy/matcher -run '^$$' -fuzz '^FuzzFullRegex$$' -fuzztime $(FUZZTIME)

bench:
	./bench/run.sh $(BENCH_ARGS)

# Control-plane benchmark: 1,000 services, 500 xDS clients, a VirtualService
# change timed from the file write (see bench/controlplane.sh).
bench-control:
	./bench/controlplane.sh $(BENCH_ARGS)

# Unit tests of the benchmark harness (nested module; needs nginx and
# haproxy, which bench/run.sh installs).
bench-test:
	cd bench && $(GO) test -race -count=1 ./...

# Smoke run of the benchmark: 3 s at 1,000 req/s per cell.
bench-quick:
	./bench/run.sh --quick $(BENCH_ARGS)

clean:
	rm -rf bin/

# The one image (weft, weft-control, weft-proxy + iptables/nftables) that
# the Helm chart and the injected sidecars run; see docs/KUBERNETES.md.
IMAGE ?= ghcr.io/weftmesh/weft:dev
.PHONY: image
image:
	docker build -t $(IMAGE) .
