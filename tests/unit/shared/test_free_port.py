"""Ports picked for test listeners stay clear of the ones outgoing connections take."""

from __future__ import annotations

import socket

from shared.infra.processes import ephemeral_floor, free_port


def test_a_picked_port_is_free_and_below_the_range_outgoing_connections_use() -> None:
    low = ephemeral_floor()
    ports = {free_port() for _ in range(20)}
    assert all(1024 <= port < low for port in ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))  # nobody holds it


def test_a_port_someone_listens_on_is_never_picked() -> None:
    held = []
    try:
        low = ephemeral_floor()
        for port in range(max(1024, low - 12_000), low, 40):  # one port in 40 taken
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
        taken = {sock.getsockname()[1] for sock in held}
        assert not {free_port() for _ in range(50)} & taken
    finally:
        for sock in held:
            sock.close()
