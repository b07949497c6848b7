"""The disk edge: files replaced atomically (write, fsync, rename, fsync the directory).

Imports only the model.
"""
