"""Who may use the operator console, ROS-free: the bind address and its token, and the one
console (of several open browsers) that holds control.

On the loopback address only this machine reaches the page, so no token is needed (one given is
still enforced). Any other bind requires a token: generated and printed at start-up when none is
configured, carried by the printed URL, and checked on every API request and the WebSocket.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from dataclasses import dataclass, field


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to them (e.g. localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


@dataclass(frozen=True)
class ConsoleAccess:
    host: str
    token: str            # "" = none (allowed only on loopback)

    @classmethod
    def for_bind(cls, host: str, token: str) -> tuple["ConsoleAccess", bool]:
        """The access rule for binding to ``host``; the flag says a token was generated."""
        if token or is_loopback(host):
            return cls(host, token), False
        return cls(host, secrets.token_urlsafe(18)), True

    @property
    def requires_token(self) -> bool:
        return bool(self.token)

    def allows(self, given: str | None) -> bool:
        if not self.token:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def url(self, port: int) -> str:
        shown = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") and not self.token else self.host
        if shown in ("0.0.0.0", "::"):
            shown = socket.gethostname()   # reachable from the network: name this machine
        query = f"/?token={self.token}" if self.token else "/"
        return f"http://{shown}:{port}{query}"


@dataclass
class ControlSeat:
    """Consoles in the order they connected; the oldest one holds control, the others watch.
    When the holder leaves, control passes to the next oldest."""
    _clients: list[int] = field(default_factory=list)
    _next_id: int = 1

    def join(self) -> int:
        client = self._next_id
        self._next_id += 1
        self._clients.append(client)
        return client

    def leave(self, client: int) -> bool:
        """Forget ``client``; True if it held control."""
        held = self.holder == client
        if client in self._clients:
            self._clients.remove(client)
        return held

    @property
    def holder(self) -> int | None:
        return self._clients[0] if self._clients else None

    def role(self, client: int) -> str:
        return "control" if client == self.holder else "watch"

    @property
    def connected(self) -> int:
        return len(self._clients)
