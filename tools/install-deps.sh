#!/usr/bin/env bash
# Install everything vxlan-evt and its test suite need on a fresh Debian machine (as root):
# network namespaces and veths (iproute2), nsenter/unshare/mount (util-linux, mount), an
# isolated dockerd 20.10 with its containerd and runc (docker.io), an offline container image
# (busybox-static: must be the static build), ping, etcd, systemd (only for `systemd-analyze
# verify` of our unit), prometheus (scrapes a daemon in a test), mmdebstrap (the Debian base
# of our image); and a virtualenv at .venv with the package and its test extra. Installs only what is missing; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

want=(iproute2 util-linux mount coreutils tar docker.io containerd runc busybox-static
      iputils-ping etcd-server etcd-client mmdebstrap systemd prometheus)
missing=()
for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing apt packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import vxlan_evt, pyroute2, trio, quart_trio, hypercorn" >/dev/null
