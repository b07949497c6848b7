"""The metrics registry, and the operator files that query it (alerts, dashboard)."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from vxlan_evt.model.metrics import Metrics

REPO = Path(__file__).resolve().parents[3]
OPERATOR_FILES = [REPO / "tools/prometheus/alerts.yml", REPO / "tools/grafana/vxlan-evt.json"]


def samples(metrics: Metrics) -> dict[str, float]:
    text = metrics.render().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_peers_and_etcd_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    peers, connected = [3], [True]
    metrics.track_peers(lambda: peers[0])
    assert "vxlan_evt_etcd_connected" not in samples(metrics), "no etcd, no series"
    metrics.track_etcd(lambda: connected[0])
    assert samples(metrics)["vxlan_evt_peers"] == 3
    assert samples(metrics)["vxlan_evt_etcd_connected"] == 1
    peers[0], connected[0] = 7, False
    assert samples(metrics)["vxlan_evt_peers"] == 7
    assert samples(metrics)["vxlan_evt_etcd_connected"] == 0


def test_alerts_and_dashboard_query_only_series_we_export() -> None:
    metrics = Metrics()
    metrics.track_etcd(lambda: True)
    exported = set(samples(metrics))
    for family in metrics.registry.collect():  # a labelled family has no sample until used
        base = family.name
        exported |= {base, f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum"}
    for path in OPERATOR_FILES:
        used = set(re.findall(r"vxlan_evt_[a-z0-9_]+", path.read_text()))
        assert used, path
        assert used <= exported, f"{path.name} queries unknown series: {sorted(used - exported)}"
