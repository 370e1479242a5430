#!/usr/bin/env bash
# Control-plane benchmark (issue 3): weft-control serving a simulated mesh
# of 1,000 services (10 namespaces, one HTTP port each, 10 endpoints each,
# 100 with a 90/10 VirtualService over DestinationRule subsets), written as
# Istio YAML into a --config-dir, to 500 in-process xDS clients that ACK
# like Envoy (internal/xds/xdstest). One VirtualService file is then
# rewritten to 50/50 and its delivery timed from the write.
#
#   ./bench/controlplane.sh                 # 3 runs, 500 proxies (make bench-control)
#   ./bench/controlplane.sh --runs 1 -- -proxies 100 -delta
#
# Flags after -- go to xdsbench (go run ./internal/xds/xdsbench -help).
# Reports, per run: time until all proxies have their full configuration,
# route change p50/p99/max from the file write, bytes per proxy by type,
# weft-control's CPU seconds and RSS (settled: after 5 s idle; peak: VmHWM).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
runs=3 extra=()
while (($#)); do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "usage: $0 [--runs N] [-- xdsbench flags]" >&2; exit 2 ;;
  esac
done

mkdir -p bench/out/bin
CGO_ENABLED=0 go build -o bench/out/bin/weft-control ./cmd/weft-control
go build -o bench/out/bin/xdsbench ./internal/xds/xdsbench
echo "# $(date -u +%FT%TZ) $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "# ./bench/controlplane.sh --runs $runs${extra[*]:+ -- ${extra[*]}}"
for i in $(seq 1 "$runs"); do
  echo "## run $i"
  bench/out/bin/xdsbench -control bench/out/bin/weft-control -proxies 500 "${extra[@]}"
done
