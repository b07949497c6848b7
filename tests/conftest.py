"""Shared fixtures: the lab rig (netns hosts with isolated dockerd) and a real etcd."""

pytest_plugins = ["tests.fixtures.plugin", "tests.fixtures.etcd"]
