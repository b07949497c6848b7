"""The state file on disk; blocking, so callers run it in a worker thread."""

from __future__ import annotations

from pathlib import Path

from vxlan_evt.disk.atomicfile import write_atomic
from vxlan_evt.model.state import DriverState, decode_state, encode_state

STATE_FILE_NAME = "state.json"


class StateStore:
    """The state file in `state_dir`; blocking, so callers run it in a worker thread."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / STATE_FILE_NAME

    def load(self) -> DriverState:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return DriverState()
        return decode_state(data)

    def save(self, state: DriverState) -> None:
        """Write atomically: a crash leaves the old state or the new one, never half."""
        write_atomic(self.path, encode_state(state))
