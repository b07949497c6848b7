"""The bottom layer: the vocabulary every other part of vxlan-evt shares.

Pure: no I/O, and nothing here imports from the rest of the package, so the server side
(observer, API) and the client side (CLI verbs, views, doctor), the planner and the kernel
edge read one definition of each record, mark, mode and event.
"""
