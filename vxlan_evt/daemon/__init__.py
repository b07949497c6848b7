"""The daemon: configuration, logging, and `run_daemon`, which wires every layer in one nursery."""
