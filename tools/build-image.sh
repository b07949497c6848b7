#!/usr/bin/env bash
# Build the vxlan-evt container image without an image registry (as root):
#
#   tools/build-image.sh [--tag vxlan-evt:VERSION] [--save FILE]
#
# 1. A Debian base image with Python (Debian's python3, python3-venv, iproute2) made by
#    mmdebstrap from this machine's own apt sources, cached as a tarball under
#    $VXEVT_IMAGE_CACHE (default /var/cache/vxlan-evt) and keyed by the sources and the
#    package list, so it is built once per machine (~30 s) and `docker import`ed as
#    local/vxlan-evt-base:<key>.
# 2. vxlan-evt and every dependency as wheels (`pip wheel`, from PyPI) in build/wheels.
# 3. `docker build` of the top-level Dockerfile FROM that base, installing from the wheels.
#
# The dockerd is the one DOCKER_HOST names (default: the machine's). --save writes the
# image as a `docker save` tarball for `docker load` elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' vxlan_evt/__init__.py)
tag="vxlan-evt:${version}"
save=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tag|--save)
            if [ $# -lt 2 ]; then echo "build-image.sh: $1 needs a value" >&2; exit 2; fi
            if [ "$1" = --tag ]; then tag="$2"; else save="$2"; fi
            shift 2 ;;
        -h|--help) sed -n '2,/^set /{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
        *) echo "build-image.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

docker=${DOCKER:-docker}
suite=bookworm
packages=python3,python3-venv,iproute2
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
if [ ! -f "$sources" ]; then
    echo "build-image.sh: no apt sources file (debian.sources or sources.list) to build the base from" >&2
    exit 1
fi
if ! command -v mmdebstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

cache=${VXEVT_IMAGE_CACHE:-/var/cache/vxlan-evt}
# mmdebstrap's merged-usr hook lays out merged /usr itself: without it bookworm installs the
# usrmerge package, which pulls in all of perl (~50 MB of the image).
hooks=()
if [ -d /usr/share/mmdebstrap/hooks/merged-usr ]; then
    hooks=(--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
fi
key=$( (cat "$sources"; echo "$suite $packages minbase nodocs ${hooks[*]}") | sha256sum | cut -c1-12)
base_tar="$cache/base-$suite-$key.tar"
base_image="local/vxlan-evt-base:$key"
mkdir -p "$cache"
if [ ! -s "$base_tar" ]; then
    echo "== base: mmdebstrap $suite ($packages) -> $base_tar"
    mmdebstrap --quiet --variant=minbase --include="$packages" "${hooks[@]}" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        "$suite" "$cache/partial-$key.tar" "$sources"
    mv "$cache/partial-$key.tar" "$base_tar"  # mmdebstrap picks the format by the ending
fi
if ! "$docker" image inspect "$base_image" >/dev/null 2>&1; then
    echo "== base: docker import $base_image"
    "$docker" import "$base_tar" "$base_image" >/dev/null
fi

echo "== wheels: build/wheels"
python=.venv/bin/python
[ -x "$python" ] || python=python3
# All of build/: setuptools leaves build/lib there, which would put modules since deleted
# from vxlan_evt/ into the wheel.
rm -rf build
if ! "$python" -m pip wheel -q --disable-pip-version-check --wheel-dir build/wheels . \
        > build-wheels.log 2>&1; then
    grep -v "^WARNING: Location" build-wheels.log >&2
    rm -f build-wheels.log
    echo "build-image.sh: pip wheel failed" >&2
    exit 1
fi
rm -f build-wheels.log
ls build/wheels/vxlan_evt-"$version"-*.whl >/dev/null

echo "== docker build $tag (FROM $base_image)"
"$docker" build -q --build-arg BASE="$base_image" --build-arg WHEELHOUSE=build/wheels \
    -t "$tag" . >/dev/null
"$docker" image inspect "$tag" --format 'image {{.Id}} size {{.Size}}'
if [ -n "$save" ]; then
    "$docker" save -o "$save" "$tag"
    echo "saved $tag to $save"
fi
