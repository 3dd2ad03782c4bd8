"""Brokers and databases for development and tests, in three modes.

embedded: local child processes from PyPI packages (no Docker needed);
containers: testcontainers (needs a Docker engine); external: given addresses.
"""
