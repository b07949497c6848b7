#!/usr/bin/env bash
# Install vxlan-evt on a fresh Debian machine (as root) and run the plugin in the foreground on
# its defaults: socket /run/docker/plugins/vxlan.sock (driver "vxlan"), state in
# /var/lib/vxlan-evt. Extra arguments go to `vxlan-evt serve` (e.g. --scope global -d).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
exec .venv/bin/vxlan-evt serve "$@"
