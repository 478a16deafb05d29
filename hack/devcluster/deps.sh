#!/usr/bin/env bash
# Installs the Debian packages the dev cluster and the tests use. Idempotent:
# does nothing when they are all present. Package maintainer scripts are kept
# from starting the daemons (containerd, etcd, ZooKeeper, registry): the dev
# cluster starts its own, on its own ports, with its own data.
set -euo pipefail

pkgs=(
	containerd runc containernetworking-plugins iptables iproute2 kmod
	etcd-server zookeeperd docker-registry
	debootstrap ca-certificates git
	ansible skopeo chromium
)

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: need root to install: ${missing[*]}" >&2
	exit 1
fi

echo "deps.sh: installing ${missing[*]}"
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# kubepool deps.sh: keep installed daemons from starting\nexit 101\n' >"$policy"
	chmod +x "$policy"
	made_policy=1
fi
cleanup() { if [ -n "$made_policy" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
