"""A free TCP port on 127.0.0.1, for servers this project starts on the loopback interface only (the
demo, the tests, the benchmarks)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now, chosen by the OS; the caller's server binds it next."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
