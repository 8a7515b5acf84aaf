"""Discovery tests use the server fixtures from tests/servers (real etcd/dnsmasq/moto and doubles).

They are imported once for the whole suite by tests/conftest.py.
"""
