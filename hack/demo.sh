#!/usr/bin/env bash
# `make demo`: kubepool's main job on the dev cluster. Today: a machine-like
# pod is created, waited for, and a command is run in it over exec.
set -euo pipefail
cd "$(dirname "$0")/.."
env=.devcluster/env.json
field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" "$env"; }
export KUBECONFIG="$(field kubeconfig)"
kubectl="$(field kubectl)"
image="$(field machine_image)"
ns="demo-$(date +%s)"

echo "== a namespace and a machine-like pod from $image"
"$kubectl" create namespace "$ns"
trap '"$kubectl" delete namespace "$ns" --wait=false >/dev/null' EXIT
"$kubectl" -n "$ns" run machine --image="$image" --restart=Never --command -- \
	/bin/sh -c 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done'
"$kubectl" -n "$ns" wait --for=condition=Ready pod/machine --timeout=120s
echo "== exec into it"
"$kubectl" -n "$ns" exec machine -- sh -c 'uname -a; git --version; python3 -c "print(\"python3 works\")"'
