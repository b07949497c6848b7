#!/usr/bin/env bash
# Make vxlan-evt a managed (v2) Docker plugin from its image (as root):
#
#   tools/build-plugin.sh [--image vxlan-evt:VERSION] [--name vxlan-evt:VERSION]
#                         [--replace] [--enable]
#
# The plugin's rootfs is the image's filesystem (`docker create` + `docker export`), its
# config plugin/config.json; `docker plugin create NAME DIR` registers it with the dockerd
# DOCKER_HOST names (default: the machine's). The image must be there already: build it
# with tools/build-image.sh. With --enable the plugin is enabled at once (set VXLAN_EVT_*
# settings first with `docker plugin set NAME VXLAN_EVT_SCOPE=global ...` if you need them).
# Docker names the driver after the plugin: `docker network create -d NAME`, and the same
# name is the IPAM driver (`--ipam-driver NAME`); a `:latest` tag may be left out.
# A plugin of that name is never removed unless --replace says so (its networks go with it).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' vxlan_evt/__init__.py)
image="vxlan-evt:${version}"
name="vxlan-evt:${version}"
enable=0
replace=0
while [ $# -gt 0 ]; do
    case "$1" in
        --image|--name)
            if [ $# -lt 2 ]; then echo "build-plugin.sh: $1 needs a value" >&2; exit 2; fi
            if [ "$1" = --image ]; then image="$2"; else name="$2"; fi
            shift 2 ;;
        --enable) enable=1; shift ;;
        --replace) replace=1; shift ;;
        -h|--help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
        *) echo "build-plugin.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
docker=${DOCKER:-docker}

if ! "$docker" image inspect "$image" >/dev/null 2>&1; then
    echo "build-plugin.sh: no image $image in this dockerd; build it with tools/build-image.sh" >&2
    exit 1
fi
if "$docker" plugin inspect "$name" >/dev/null 2>&1; then
    if [ "$replace" = 0 ]; then
        echo "build-plugin.sh: plugin $name exists; pass --replace to remove it first" >&2
        exit 1
    fi
    "$docker" plugin rm -f "$name" >/dev/null
fi
work=$(mktemp -d /tmp/vxlan-evt-plugin.XXXXXX)
container=""
cleanup() {
    [ -n "$container" ] && "$docker" rm -f "$container" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== rootfs from $image"
container=$("$docker" create "$image")
mkdir "$work/rootfs"
"$docker" export "$container" | tar -x -C "$work/rootfs"
# Where the plugin's mounts land; Docker bind-mounts onto them.
mkdir -p "$work/rootfs/var/lib/vxlan-evt" "$work/rootfs/run/vxlan-evt" "$work/rootfs/run/docker/plugins"
cp plugin/config.json "$work/config.json"

echo "== docker plugin create $name"
"$docker" plugin create "$name" "$work" >/dev/null
if [ "$enable" = 1 ]; then
    # The plugin's bind mounts need their host sides.
    mkdir -p /var/lib/vxlan-evt /run/vxlan-evt
    "$docker" plugin enable "$name" >/dev/null
fi
"$docker" plugin inspect "$name" --format 'plugin {{.Name}} id {{.Id}} enabled {{.Enabled}}'
