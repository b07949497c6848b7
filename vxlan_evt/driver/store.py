"""The state file on disk; blocking, so callers run it in a worker thread."""

from __future__ import annotations

from pathlib import Path

from vxlan_evt.disk.documents import load_document, save_document
from vxlan_evt.model.state import DriverState, decode_state, encode_state

STATE_FILE_NAME = "state.json"


class StateStore:
    """The state file in `state_dir` (and its last good copy, `state.json.bak`)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / STATE_FILE_NAME
        # Set by `load` when the file was damaged and the backup used: what happened.
        self.recovered: str | None = None

    def load(self) -> DriverState:
        loaded = load_document(self.path, decode_state, DriverState, "state file")
        self.recovered = loaded.recovered
        return loaded.value

    def save(self, state: DriverState) -> None:
        """Write atomically: a crash leaves the old state or the new one, never half."""
        save_document(self.path, encode_state(state))
