"""``free_port``: a loopback port that a server can bind next."""

import socket

from fraud_detection.free_port import free_port


def test_free_port_is_bindable_on_loopback():
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # raises if something already holds it
        s.listen()
