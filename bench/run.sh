#!/usr/bin/env bash
# Side-by-side reverse-proxy benchmark: weft-proxy, nginx and HAProxy in
# front of the same upstream, plus a direct (no proxy) baseline.
#
#   ./bench/run.sh                        # full run (what `make bench` does)
#   ./bench/run.sh --quick                # smoke run (`make bench-quick`)
#   ./bench/run.sh --only nginx,haproxy --rates 1000 --protocols http1 --duration 5s --runs 3
#
# This script only installs and builds; bench/cmd/weftbench measures and
# writes the table (stdout, bench/out/results-*.md and .json). Flags after
# the script name go to weftbench (`./bench/run.sh --help` lists them), except:
#   --skip-install   do not apt-get install nginx/haproxy when missing
#   --skip-build     reuse bench/out/bin as it is
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bin="bench/out/bin"
command_line="./bench/run.sh${*:+ $*}"

install=1 build=1 args=()
for a in "$@"; do
  case "$a" in
    --skip-install) install=0 ;;
    --skip-build) build=0 ;;
    *) args+=("$a") ;;
  esac
done

log() { echo "bench: $*" >&2; }

if [[ $install == 1 ]]; then
  missing=()
  command -v nginx >/dev/null || missing+=(nginx)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v taskset >/dev/null || missing+=(util-linux)
  if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    log "installing ${missing[*]} from Debian"
    $sudo apt-get update -qq
    # Debian's postinst would start the system nginx/haproxy services; the
    # benchmark runs its own instances, so keep those off where policy-rc.d
    # does not already.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $sudo apt-get install -y -qq "${missing[@]}" >&2
  fi
fi

if [[ $build == 1 ]]; then
  mkdir -p "$bin"
  log "building fortio and weftbench (nested module bench/go.mod)"
  (cd bench && go build -o out/bin/fortio fortio.org/fortio && go build -o out/bin/weftbench ./cmd/weftbench)
  # weft-proxy is measured only when it builds; a stale binary from an
  # earlier build must not stand in for the current tree.
  rm -f "$bin/weft-proxy"
  if [[ -d cmd/weft-proxy ]]; then
    log "building weft-proxy"
    # Static, pure-Go build, as `make build` makes it (no libc mapped: 1.4 MiB less RSS;
    # grpcnotrace: no x/net/trace, 2.6 MiB less).
    if ! CGO_ENABLED=0 go build -tags grpcnotrace -o "$bin/weft-proxy" ./cmd/weft-proxy; then
      log "weft-proxy does not build; it is left out of this run"
      rm -f "$bin/weft-proxy"
    fi
  else
    log "no ./cmd/weft-proxy yet; weft-proxy is left out of this run"
  fi
fi

# weftbench itself stays on the load generator's CPU (it is idle while
# fortio runs), so nothing but the proxy under test runs on the proxy CPU.
export WEFTBENCH_COMMAND="$command_line"
exec taskset -c 0 "$bin/weftbench" -bench-dir bench -bin-dir "$bin" -out bench/out "${args[@]}"
