#!/usr/bin/env bash
# `make test`: the whole suite on a machine that may have nothing yet.
# Installs the Debian packages, lints, brings the dev cluster (Kubernetes,
# registry, ZooKeeper) up, runs the unit and end-to-end tests, and stops the
# cluster again if this script started it, whether the tests pass or not.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
GO="${GO:-go}"

step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

step "Debian packages"
hack/devcluster/deps.sh

step "build"
$GO build -o bin/devcluster ./hack/devcluster
$GO build -o bin/kubepool ./cmd/kubepool

step "lint"
make --no-print-directory lint

started=
if ! bin/devcluster status >/dev/null 2>&1; then
	started=1
fi
cleanup() {
	rc=$?
	if [ -n "$started" ]; then
		step "dev cluster down"
		bin/devcluster down || rc=1
	fi
	exit $rc
}
trap cleanup EXIT

step "dev cluster up"
bin/devcluster up

# The dev cluster's ZooKeeper serves the unit tests too (each test gets its
# own chroot), which saves starting a JVM per test package.
KUBEPOOL_ZOOKEEPER="$(sed -n 's/.*"zookeeper": *"\([^"]*\)".*/\1/p' .devcluster/env.json)"
export KUBEPOOL_ZOOKEEPER

step "unit tests"
make --no-print-directory unit

step "end-to-end tests"
make --no-print-directory e2e
