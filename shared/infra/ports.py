"""Ports the local run listens on: found taken before anything starts, said in one line."""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Port:
    """A port a component of the local run binds, and how a user picks another."""

    number: int
    component: str
    remedy: str  # "--kafka-port", or what to do when no flag moves it


def is_taken(port: int, host: str = "127.0.0.1") -> bool:
    """True when binding `host:port` fails (a listener holds it, on this or any address).

    SO_REUSEADDR as the servers set it: a port whose last connection waits in TIME_WAIT
    counts as free, as it does for them."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def first_taken(ports: list[Port]) -> Port | None:
    return next((port for port in ports if is_taken(port.number)), None)


def taken_message(port: Port) -> str:
    if port.remedy.startswith("--"):
        return (
            f"port {port.number} ({port.component}) is already in use; "
            f"choose another with {port.remedy} PORT"
        )
    return f"port {port.number} ({port.component}) is already in use; {port.remedy}"
