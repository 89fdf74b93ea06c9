"""What ``COROSCOPE_OUTPUT`` can name: parsed and validated once, at configuration time.

Accepted forms::

    stderr | stdout
    PATH                                  a file, appended to
    syslog+tcp://HOST:PORT                RFC 5424 over TCP, RFC 6587 octet counting
    syslog+udp://HOST:PORT                RFC 5424, one message per datagram
    tcp://HOST:PORT                       newline-delimited JSON over TCP
    otlp+http://HOST:PORT[/PATH]          OTLP/HTTP logs, JSON encoding (default /v1/logs)

``HOST`` may be a name, an IPv4 address or a bracketed IPv6 address (``[::1]``).  The
syslog and OTLP ports default to 514 and 4318.  This module imports nothing heavy: the
start-up path validates the setting before anything else is loaded.
"""

from __future__ import annotations

import re

__all__ = ["ACCEPTED", "Output", "parse_output"]

ACCEPTED = (
    "stderr, stdout, a file path, syslog+tcp://HOST:PORT, syslog+udp://HOST:PORT, "
    "tcp://HOST:PORT or otlp+http://HOST:PORT[/PATH]"
)

_DEFAULT_PORTS = {"syslog+tcp": 514, "syslog+udp": 514, "otlp+http": 4318}
_SCHEMES = ("syslog+tcp", "syslog+udp", "tcp", "otlp+http")
_URL = r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$"
_HOST_PORT = r"^(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+))(?::(?P<port>\d*))?$"


class Output:
    """A parsed output: ``kind`` is ``stderr``, ``stdout``, ``file`` or a URL scheme."""

    __slots__ = ("host", "kind", "path", "port")

    def __init__(self, kind: str, path: str = "", host: str = "", port: int = 0) -> None:
        self.kind = kind
        self.path = path
        self.host = host
        self.port = port

    def __eq__(self, other: object) -> bool:
        if type(other) is not Output:
            return NotImplemented
        return (self.kind, self.path, self.host, self.port) == (
            other.kind,
            other.path,
            other.host,
            other.port,
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.path, self.host, self.port))

    def __repr__(self) -> str:
        return f"Output({self.kind!r}, path={self.path!r}, host={self.host!r}, port={self.port})"

    @property
    def is_network(self) -> bool:
        """Whether records leave the machine through a socket."""
        return self.kind in _SCHEMES


def parse_output(raw: str) -> Output:
    """Parse an output setting; raises ``ValueError`` naming the accepted forms."""
    value = raw.strip()
    if not value:
        raise ValueError(f"accepted: {ACCEPTED}")
    if value in ("stderr", "stdout"):
        return Output(value)
    match = re.match(_URL, value)  # (re caches the compiled pattern)
    if match is None:
        return Output("file", path=value)
    scheme = match["scheme"].lower()
    if scheme not in _SCHEMES:
        raise ValueError(f"unknown scheme {scheme}://; accepted: {ACCEPTED}")
    rest = match["rest"]
    authority, slash, path = rest.partition("/")
    if slash and scheme != "otlp+http":
        raise ValueError(f"{scheme}:// takes no path; accepted: {ACCEPTED}")
    hp = re.match(_HOST_PORT, authority)
    if hp is None:
        raise ValueError(f"{authority!r} is not HOST:PORT; accepted: {ACCEPTED}")
    host = hp["ip6"] or hp["host"]
    port_text = hp["port"]
    if port_text:
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError(f"port {port} is out of range 1-65535; accepted: {ACCEPTED}")
    elif scheme in _DEFAULT_PORTS:
        port = _DEFAULT_PORTS[scheme]
    else:
        raise ValueError(f"{scheme}:// needs a port (HOST:PORT); accepted: {ACCEPTED}")
    if scheme == "otlp+http":
        path = "/" + path if path else "/v1/logs"
        if any(c.isspace() for c in path) or "?" in path or "#" in path:
            raise ValueError(f"{path!r} is not a plain URL path; accepted: {ACCEPTED}")
    else:
        path = ""
    return Output(scheme, path=path, host=host, port=port)
