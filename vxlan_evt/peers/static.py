"""The embedded peer backend: a peers file (JSON or TOML), reloaded when it changes.

A bad edit never empties the table: the old table stays in force and the
error is logged, naming the entry at fault.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from collections.abc import Callable
from pathlib import Path

import trio

from vxlan_evt.model.errors import InvalidOption
from vxlan_evt.peers.table import PeerTable, parse_peers_document

log = logging.getLogger(__name__)


def load_peers_file(path: Path) -> PeerTable:
    """Parse `path` by its suffix (.toml, else JSON); errors name the file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidOption(f"peers file {path}: {exc.strerror}") from exc
    try:
        document = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise InvalidOption(f"peers file {path}: not valid {path.suffix or 'JSON'}: {exc}") from exc
    try:
        return parse_peers_document(document, source="static")
    except InvalidOption as exc:
        raise InvalidOption(f"{path}: {exc}") from exc


class StaticPeers:
    """The current table of a peers file, or an empty one when no file was given."""

    def __init__(
        self,
        path: Path | None,
        *,
        poll_interval: float = 1.0,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.on_change = on_change  # called after a reload changed the table
        self.path = path
        self.poll_interval = poll_interval
        self.table = load_peers_file(path) if path is not None else PeerTable()
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def reload_if_changed(self) -> bool:
        stamp = self._file_stamp()
        if stamp == self._stamp or self.path is None:
            return False
        self._stamp = stamp
        try:
            self.table = load_peers_file(self.path)
        except InvalidOption as exc:
            log.error(
                "peers file not reloaded, keeping %d peers: %s", len(self.table.endpoints), exc
            )
            return False
        log.info("peers file reloaded path=%s peers=%d", self.path, len(self.table.endpoints))
        self.on_change()
        return True

    async def watch(self) -> None:
        while self.path is not None:
            await trio.sleep(self.poll_interval)
            self.reload_if_changed()
