"""Operator tooling: the `helpstream` command (local run, embedded infra, demo, keys)."""
