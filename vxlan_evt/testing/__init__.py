"""Test rigs shared by the tests and the tools (benchmarks, lab, capture), as trio.testing.

Real kernel objects in throwaway network namespaces (`netns`), the real daemon in one
(`daemon`), lab hosts with their own dockerd (`lab`, `fabric`, `busybox`), a real etcd
(`etcd`), fakes of our own kernel protocols for unit tests (`fake_kernel`,
`fake_netlink`), sample observe documents (`observe_samples`) and the benchmark rig
(`bench`). The top layer: it may import every other one, and nothing imports it.
"""
