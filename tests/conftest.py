"""Shared fixtures: the lab rig (netns hosts with isolated dockerd) lives in tests/fixtures."""

pytest_plugins = ["tests.fixtures.plugin"]
