#!/usr/bin/env bash
# Builds the kube-apiserver and etcd that the Kubernetes tests run (through
# controller-runtime's envtest) from the Go module proxy, into OUTDIR
# (default: weft/kube/v1.37.2-v3.7.3 under the user's cache directory), and
# prints OUTDIR. Binaries already there are kept: a warm run takes a second.
# A cold build takes 5 to 15 minutes and about 2.5 GB of memory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/weft/kube/v1.37.2-v3.7.3}
mkdir -p "$out"
# One build at a time: test packages run in parallel and may all ask.
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/etcd" ]; then
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3) >&2
  mv "$out/etcd.tmp" "$out/etcd"
fi
if [ ! -x "$out/kube-apiserver" ]; then
  (cd "$here/apiserver" && go build -trimpath -o "$out/kube-apiserver.tmp" \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean" \
    k8s.io/kubernetes/cmd/kube-apiserver) >&2
  mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
fi
echo "$out"
