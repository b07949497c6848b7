"""The etcd edge: a v3 gRPC-gateway client over httpx and its pure JSON codec.

Imports only the model; knows keys and revisions, not what peers or pools mean.
"""
