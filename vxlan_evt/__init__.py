"""vxlan-evt: an event-driven VXLAN network driver for Docker."""

__version__ = "0.1.0"
