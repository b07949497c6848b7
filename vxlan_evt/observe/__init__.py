"""The observe API (events, tables, metrics) and the observer that reads the daemon for it."""
