"""Docker's remote IPAM protocol (`IpamDriver.*`), served on the driver's socket.

Field names as libnetwork's `ipams/remote/api` sends and reads them. Docker sends
RequestPool once per network per host (and never again after a plugin restart), then
RequestAddress for the gateway (Options `RequestAddressType: com.docker.network.gateway`)
and for each container; PoolIDs are self-describing (`ipam.Pool.pool_id`), so nothing
but the allocations needs remembering. Errors are `UserError`s, shown to the user.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from vxlan_evt.driver.protocol import Handler
from vxlan_evt.ipam.allocation import (
    GLOBAL_ADDRESS_SPACE,
    LOCAL_ADDRESS_SPACE,
    address_kind,
    parse_address,
    parse_pool_id,
    parse_pool_request,
)
from vxlan_evt.ipam.store import IpamStore
from vxlan_evt.model.errors import InvalidOption

log = logging.getLogger(__name__)


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidOption(f"{key} must be a string, got {type(value).__name__}")
    return value


def _options(body: Mapping[str, Any]) -> dict[str, str]:
    value = body.get("Options")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidOption(f"Options must be an object, got {type(value).__name__}")
    return {str(k): str(v) for k, v in value.items()}


def _pool_id(body: Mapping[str, Any]) -> str:
    pool_id = _text(body, "PoolID")
    if not pool_id:
        raise InvalidOption("request is missing PoolID")
    return pool_id


class IpamService:
    """The `IpamDriver.*` handlers over one store; `host` names this host in the records."""

    def __init__(self, store: IpamStore, host: str) -> None:
        self.store = store
        self.host = host
        self.handlers: dict[str, Handler] = {
            "IpamDriver.GetCapabilities": self.get_capabilities,
            "IpamDriver.GetDefaultAddressSpaces": self.get_default_address_spaces,
            "IpamDriver.RequestPool": self.request_pool,
            "IpamDriver.ReleasePool": self.release_pool,
            "IpamDriver.RequestAddress": self.request_address,
            "IpamDriver.ReleaseAddress": self.release_address,
            "IpamDriver.DiscoverNew": self.no_op,
            "IpamDriver.DiscoverDelete": self.no_op,
        }

    async def get_capabilities(self, _body: Mapping[str, Any]) -> dict[str, Any]:
        return {"RequiresMACAddress": False}

    async def get_default_address_spaces(self, _body: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "LocalDefaultAddressSpace": LOCAL_ADDRESS_SPACE,
            "GlobalDefaultAddressSpace": GLOBAL_ADDRESS_SPACE,
        }

    async def no_op(self, _body: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    async def request_pool(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Same pool and ip-range → same PoolID on every host, so they share allocations."""
        v6 = body.get("V6") or False
        if not isinstance(v6, bool):
            raise InvalidOption(f"V6 must be a boolean, got {type(v6).__name__}")
        pool = parse_pool_request(
            _text(body, "AddressSpace"), _text(body, "Pool"), _text(body, "SubPool"), v6
        )
        refs = await self.store.pool_refs(pool, self.host, +1)
        log.info("ipam pool requested pool=%s refs=%d", pool.pool_id, refs)
        return {"PoolID": pool.pool_id, "Pool": str(pool.network), "Data": {}}

    async def release_pool(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Idempotent: Docker has released the pool's addresses before it calls this."""
        pool = parse_pool_id(_pool_id(body))
        refs = await self.store.pool_refs(pool, self.host, -1)
        log.info("ipam pool released pool=%s refs=%d", pool.pool_id, refs)
        return {}

    async def request_address(self, body: Mapping[str, Any]) -> dict[str, Any]:
        pool = parse_pool_id(_pool_id(body))
        requested = parse_address(pool, _text(body, "Address"))
        kind = address_kind(_options(body))
        address = await self.store.allocate(pool, requested, kind, self.host)
        log.info(
            "ipam address allocated pool=%s address=%s kind=%s requested=%s",
            pool.pool_id,
            address,
            kind,
            requested or "-",
        )
        return {"Address": f"{address}/{pool.network.prefixlen}", "Data": {}}

    async def release_address(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Idempotent; an address another host holds is left alone (and logged)."""
        pool = parse_pool_id(_pool_id(body))
        address = parse_address(pool, _text(body, "Address"))
        if address is None:
            raise InvalidOption("ReleaseAddress is missing Address")
        outcome = await self.store.release(pool, address, self.host)
        level = logging.WARNING if outcome == "foreign" else logging.INFO
        log.log(
            level,
            "ipam address release pool=%s address=%s outcome=%s",
            pool.pool_id,
            address,
            outcome,
        )
        return {}
