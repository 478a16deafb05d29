#!/usr/bin/env bash
# `make demo`: kubepool's main job on the dev cluster (make cluster-up and
# make build have run). A launcher with deploy/example/launcher.yaml serves
# a pod node; we request it as Zuul would, run Ansible in it over the kubectl
# connection with the kubeconfig and inventory Zuul's executor would write,
# exec a command in it, list the nodes, give it back, and stop the launcher.
set -euo pipefail
cd "$(dirname "$0")/.."

env=.devcluster/env.json
field() { sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" "$env"; }
[ -f "$env" ] || { echo "demo: $env missing: run make cluster-up" >&2; exit 1; }
image="$(field machine_image)"
kubectl_dir="$(dirname "$(field kubectl)")"
kubepool="$PWD/bin/kubepool"

work=.devcluster/demo
rm -rf "$work" && mkdir -p "$work"
config="$work/launcher.yaml"
listen=127.0.0.1:8015
pidfile="$work/launcher.pid"

# The example config, with the dev cluster's current machine image.
sed "s#^\( *image: \).*/kubepool/machine:.*#\1$image#" deploy/example/launcher.yaml >"$config"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting a launcher: kubepool launcher -c deploy/example/launcher.yaml (log: $work/launcher.log)"
KUBECONFIG="$(field kubeconfig)" "$kubepool" launcher -c "$config" --listen "$listen" --hostname demo \
	>"$work/launcher.log" 2>&1 &
echo $! >"$pidfile"
node=""
stop_launcher() {
	local rc=$?
	if [ -n "$node" ] && [ $rc -ne 0 ]; then
		"$kubepool" return -c "$config" "$node" >/dev/null 2>&1 || true
	fi
	if [ -f "$pidfile" ]; then
		local pid
		pid="$(cat "$pidfile")"
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
		rm -f "$pidfile"
	fi
	[ $rc -eq 0 ] || { echo "demo failed; the launcher's log:" >&2; tail -n 30 "$work/launcher.log" >&2; }
	exit $rc
}
trap stop_launcher EXIT
curl -fs --retry 60 --retry-delay 1 --retry-connrefused --retry-all-errors --max-time 2 \
	"http://$listen/readyz" >/dev/null || { echo "demo: the launcher is not ready at http://$listen/readyz" >&2; exit 1; }
echo "ready: status page at http://$listen/"
"$kubepool" label-list -c "$config"

step "kubepool request pod -o inventory (as Zuul does: request, wait, lock, in-use)"
job="$work/job"
"$kubepool" request pod -c "$config" --output-dir "$job" -o inventory
node="$(head -n1 "$job/ids")"

step "ansible -i inventory all -m command -a 'uname -a' (kubectl connection, KUBECONFIG=$job/kubeconfig)"
KUBECONFIG="$job/kubeconfig" PATH="$kubectl_dir:$PATH" ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_NOCOLOR=1 \
	ansible -i "$job/inventory.yaml" all -m command -a 'uname -a'

step "kubepool exec $node -- git --version"
"$kubepool" exec -c "$config" "$node" -- git --version

step "kubepool list"
"$kubepool" list -c "$config"

step "kubepool return $node (the launcher deletes its namespace and pod)"
"$kubepool" return -c "$config" --wait 2m "$node"
node=""
"$kubepool" list -c "$config"

step "stopping the launcher"
