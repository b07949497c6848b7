"""vxlan-evt: an event-driven VXLAN network driver for Docker.

One package per concern, each a layer; a module imports only its own layer and the tiers
below it, never a sibling of its tier (`tests/unit/test_layers.py` checks every import):

    model                  pure shared vocabulary: addresses, entries, links, plan actions,
                           network specs, modes, state records, events, errors, metrics
    kernel | etcd | disk   the edges: netlink (wire format, listener, worker, links,
                           entries, packet socket), the etcd v3 client, atomic files
    driver                 the Docker network driver: options, protocol, plan, state store,
                           service, plugin API
    ipam                   the IPAM driver on the same socket: allocation, stores, service
    peers                  who is where: the peer table and its static, local and etcd sources
    resolve                what events mean: bus, engine, resolver, pre-program sync,
                           on-demand entries, the ARP answer, the event log
    observe                the observe API and the observer behind it
    daemon                 wiring, configuration, logging: `run_daemon`
    cli                    the command line: serve, verbs, client, views, doctor

This module imports nothing of the package, so every layer may read `__version__`.
"""

__version__ = "0.1.0"
