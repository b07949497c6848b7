"""Prometheus metrics of one daemon, on its own registry (no process-global state)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "vxlan_evt_events", "Netlink events seen, by type", ["type"], registry=self.registry
        )
        self.misses = Counter(
            "vxlan_evt_misses",
            "L2/L3 misses by outcome: answered, unanswered (not in the peer table), "
            "failed (kernel refused the write), observed (populate off)",
            ["type", "result"],
            registry=self.registry,
        )
        self.resyncs = Counter(
            "vxlan_evt_netlink_resyncs",
            "Full dumps after the netlink socket overflowed (ENOBUFS)",
            registry=self.registry,
        )
        self.lost_notifications = Counter(
            "vxlan_evt_netlink_enobufs",
            "Times the kernel reported lost notifications (ENOBUFS)",
            registry=self.registry,
        )
        self.dropped_misses = Counter(
            "vxlan_evt_resolver_dropped",
            "Misses not queued for the resolver because its queue was full",
            registry=self.registry,
        )
        self.netlink_write_seconds = Histogram(
            "vxlan_evt_netlink_write_seconds",
            "Time to program one batch of FDB/neighbour entries",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.arp_answers = Counter(
            "vxlan_evt_arp_answers",
            "ARP replies / neighbour advertisements sent into containers after an L3 miss "
            "was programmed, by family and result: sent, failed, no_port (no container veth)",
            ["family", "result"],
            registry=self.registry,
        )
        self.ondemand_entries = Gauge(
            "vxlan_evt_ondemand_entries",
            "Peers programmed on demand (from a miss) and not yet evicted",
            registry=self.registry,
        )
        self.ondemand_evictions = Counter(
            "vxlan_evt_ondemand_evictions",
            "On-demand entries removed because the kernel had not used them for the idle timeout",
            registry=self.registry,
        )
        self.plugin_call_seconds = Histogram(
            "vxlan_evt_plugin_call_seconds",
            "Docker plugin call handling time, by method",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

        self.peers = Gauge(
            "vxlan_evt_peers",
            "Remote endpoints in the peer table (peers file and etcd), read at scrape time",
            registry=self.registry,
        )
        self.etcd_connected: Gauge | None = None  # only with an etcd backend: see track_etcd

    def track_peers(self, count: Callable[[], int]) -> None:
        """`vxlan_evt_peers` reads `count()` at every scrape."""
        self.peers.set_function(count)

    def track_etcd(self, connected: Callable[[], bool]) -> None:
        """`vxlan_evt_etcd_connected`, 1 while the etcd session is up: registered only when
        there is an etcd backend, so an alert on 0 cannot fire on a host without one."""
        if self.etcd_connected is not None:
            raise RuntimeError("track_etcd: this daemon already reports an etcd session")
        self.etcd_connected = Gauge(
            "vxlan_evt_etcd_connected",
            "1 while this host's etcd session (its lease) is up, 0 while etcd is unreachable",
            registry=self.registry,
        )
        self.etcd_connected.set_function(lambda: float(connected()))

    def render(self) -> bytes:
        return generate_latest(self.registry)
