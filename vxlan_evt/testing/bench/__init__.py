"""The benchmark rig (tools/bench): namespaces and daemon driver, pure wire helpers, statistics."""
