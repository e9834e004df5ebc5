"""
systemd's readiness protocol (sd_notify) without a dependency: one datagram
to the AF_UNIX socket named by $NOTIFY_SOCKET. Outside systemd (no
NOTIFY_SOCKET) it does nothing.
"""

import os
import socket

from twisted.logger import Logger

log = Logger(namespace="wsrelay.service")


def sd_notify(state, environ=None):
    """Send `state` (e.g. 'READY=1') to systemd; True when it was sent."""
    environ = os.environ if environ is None else environ
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as e:
        log.warn("cannot notify systemd at {address}: {error}", address=environ["NOTIFY_SOCKET"], error=str(e))
        return False
    return True
