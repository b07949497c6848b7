"""The IPAM driver, served on the plugin socket beside the network driver.

`allocation` is pure; `store` keeps pools on disk or in etcd (compare-and-swap);
`service` turns Docker's IPAM calls into allocations.
"""
