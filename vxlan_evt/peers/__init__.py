"""Who is where: the peer table and the backends that fill it.

`table` is the pure record; `static` reads the peers file, `local` derives this host's
endpoints from the driver state, `etcd` and `keys` share them with other hosts.
"""
