"""Modes chosen per daemon or per network: the driver scope and how misses are resolved."""

from __future__ import annotations

from typing import Literal

Scope = Literal["local", "global"]


ResolveMode = Literal["preprogram", "on-demand"]


RESOLVE_MODES: tuple[ResolveMode, ...] = ("preprogram", "on-demand")
