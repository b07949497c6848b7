"""A real Prometheus (Debian's package) scrapes a daemon on --api-listen, both on loopback
inside one network namespace, with the example config and alert rules of tools/prometheus."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.plugin import require
from vxlan_evt.testing.daemon import DaemonProcess, wait_for
from vxlan_evt.testing.netns import Netns, NetnsError, namespaces

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "tools/prometheus"
PROMETHEUS = "127.0.0.1:9090"


def prometheus_binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        require([f"{name} not found (apt-get install prometheus)"])
        raise AssertionError("unreachable")
    return found


@pytest.fixture
def netns() -> Iterator[Netns]:
    with namespaces("prom") as (ns,):
        ns.ip("link", "set", "lo", "up")
        yield ns


def query(ns: Netns, path: str, promql: str = "") -> Any:
    """GET Prometheus's HTTP API from inside the namespace (its loopback is not ours)."""
    fetch = (
        "import httpx, sys; params = {'query': sys.argv[2]} if sys.argv[2] else {}; "
        "print(httpx.get(sys.argv[1], params=params, timeout=5).text)"
    )
    out = ns.exec(sys.executable, "-c", fetch, f"http://{PROMETHEUS}{path}", promql)
    return json.loads(out)["data"]


def test_the_example_config_and_rules_are_valid() -> None:
    promtool = prometheus_binary("promtool")
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]):
        checked = subprocess.run(
            [promtool, *args], cwd=EXAMPLES, capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prometheus_scrapes_our_series(netns: Netns, tmp_path: Path) -> None:
    prometheus = prometheus_binary("prometheus")
    # The examples, scraping every second instead of 15 s so the test need not wait.
    for name in ("prometheus.yml", "alerts.yml"):
        text = (EXAMPLES / name).read_text()
        (tmp_path / name).write_text(text.replace("15s", "1s"))
    daemon = DaemonProcess(netns.name, tmp_path / "daemon", "--api-listen", "127.0.0.1:9310")
    (tmp_path / "daemon").mkdir()
    daemon.start()
    server: subprocess.Popen[bytes] | None = None
    try:
        netns.ip("link", "add", "br-test", "type", "bridge")  # an event to count
        with (tmp_path / "prometheus.log").open("wb") as log:
            server = subprocess.Popen(
                ["ip", "netns", "exec", netns.name, prometheus,
                 f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address={PROMETHEUS}"],
                stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip

        def series(promql: str) -> list[dict[str, Any]]:
            try:
                result: list[dict[str, Any]] = query(netns, "/api/v1/query", promql)["result"]
            except (NetnsError, json.JSONDecodeError, KeyError):
                return []
            return result

        up = wait_for(lambda: series('up{job="vxlan-evt"}==1'), timeout=30, interval=0.5)
        assert up, (tmp_path / "prometheus.log").read_text()[-2000:]
        events = wait_for(lambda: series("vxlan_evt_events_total"), timeout=30, interval=0.5)
        assert {s["metric"]["type"] for s in events} >= {"link"}, events
        peers = series("vxlan_evt_peers")
        assert peers and peers[0]["value"][1] == "0"
        assert series("vxlan_evt_etcd_connected") == [], "no etcd, no etcd series"
        rules = query(netns, "/api/v1/rules")["groups"][0]["rules"]
        assert len(rules) == 6 and all(rule["health"] == "ok" for rule in rules), rules
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        daemon.stop()
