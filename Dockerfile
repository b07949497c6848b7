# vxlan-evt as a container image: the plugin daemon (`vxlan-evt serve`) and its CLI.
#
#   docker build -t vxlan-evt:0.1.0 .                 # from PyPI, on debian:bookworm-slim
#   tools/build-image.sh --tag vxlan-evt:0.1.0        # no registry: a local Debian base
#
# Run it on the host whose containers it plumbs (host network, the plugin socket dir and
# the state dir from the host; see the README's "Container image" section):
#
#   docker run -d --name vxlan-evt --restart always --net host \
#     --cap-add NET_ADMIN --cap-add NET_RAW \
#     -v /run/docker/plugins:/run/docker/plugins -v /run/vxlan-evt:/run/vxlan-evt \
#     -v /var/lib/vxlan-evt:/var/lib/vxlan-evt vxlan-evt:0.1.0
#
# BASE: any Debian-like image; when it lacks Python, the runtime stage installs Debian's
# python3 (a base from tools/build-image.sh already has it, so no apt call happens).
# WHEELHOUSE: a directory in the build context holding vxlan-evt and every dependency as
# wheels (`pip wheel`), for builds without PyPI; empty means install from PyPI.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS runtime
RUN if ! python3 -c "import ensurepip, venv" 2>/dev/null || ! command -v ip >/dev/null; then \
        apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3 python3-venv iproute2 \
        && rm -rf /var/lib/apt/lists/*; \
    fi

FROM runtime AS build
ARG WHEELHOUSE=""
# .dockerignore lets only the sources and build/wheels into the context.
COPY . /src
RUN python3 -m venv /opt/vxlan-evt \
    && if [ -n "$WHEELHOUSE" ]; then \
        /opt/vxlan-evt/bin/pip install --no-cache-dir --disable-pip-version-check \
            --no-index --find-links "/src/$WHEELHOUSE" vxlan-evt; \
    else \
        /opt/vxlan-evt/bin/pip install --no-cache-dir --disable-pip-version-check /src; \
    fi \
    && /opt/vxlan-evt/bin/pip uninstall -q -y pip \
    && /opt/vxlan-evt/bin/vxlan-evt --version

FROM runtime
COPY --from=build /opt/vxlan-evt /opt/vxlan-evt
ENV PATH=/opt/vxlan-evt/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1
LABEL org.opencontainers.image.title="vxlan-evt" \
      org.opencontainers.image.description="Event-driven VXLAN network and IPAM driver for Docker" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["vxlan-evt"]
CMD ["serve"]
