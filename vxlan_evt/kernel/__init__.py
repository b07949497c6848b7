"""The kernel edge: every netlink and packet socket of the daemon.

Imports only the model. Decides nothing about networks or peers: it decodes what the
kernel says (listener, decoder, table dumps) and carries out what it is told (the worker
thread that owns netlink writes, link plans, FDB/neighbour entries, raw frames). The wire
format is written once, in `wire`; every other module here reads and writes through it.
"""
