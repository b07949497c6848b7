"""The Docker network driver: options, protocol, plan, state store, service, plugin API.

Pure core (`options`, `protocol`, `plan`) with I/O at the edges (`store`: disk,
`service`: the kernel through a `Kernel` protocol, `api`: HTTP). Imports the model and
the edges.
"""
