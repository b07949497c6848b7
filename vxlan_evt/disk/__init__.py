"""The disk edge: files replaced atomically (write, fsync, rename, fsync the directory),
documents that keep their last good copy, and the state dir lock.

Imports only the model.
"""
