# weft — build, test and benchmark.
GO ?= go
PKGS := ./...

.PHONY: all build test vet fmt-check unit bench fuzz clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

# test is the one command CI runs (.ci/run) and the README names.
test: fmt-check vet unit

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

bench:
	./bench/run.sh

clean:
	rm -rf bin/
