"""The control channel: a local Unix socket that accepts a few commands, never code.

Off unless ``COROSCOPE_CONTROL=PATH`` is set.  The socket is created at ``PATH`` with
owner-only permissions (``0600``), and on Linux each connection's peer must be the same
user (or root; ``SO_PEERCRED``).  A connection sends one line of at most 1 KiB and gets
one line of JSON back, ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``:

* ``mode MODE [SECONDS]``: switch to ``MODE`` (``all``, ``slow``, ``watch``, ``recorder``),
  back to the configured mode after ``SECONDS`` if given;
* ``dump [REASON]``: in ``recorder`` mode, write an incident;
* ``snapshot``: a ``snapshot`` of every task;
* ``status``: the mode, the implementation and the recorder's ring.

Anything else is an error reply; the service keeps running whatever arrives.  The server
is one daemon thread that only waits in ``accept``; a command's work is what its API call
does (``set_mode``, ``dump``, ``snapshot``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
import sys
import threading
from typing import TYPE_CHECKING, Any

import orjson

from ._warn import warn

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["MAX_COMMAND", "ControlServer", "run_command"]

MAX_COMMAND = 1024
_TIMEOUT_S = 2.0
_MODES = ("all", "slow", "watch", "recorder")


def run_command(session: Session, line: str) -> dict[str, Any]:
    """The reply to one command line (never raises)."""
    words = line.split()
    if not words:
        return {"ok": False, "error": "empty command (mode, dump, snapshot, status)"}
    command, args = words[0].lower(), words[1:]
    try:
        if command == "mode":
            if not args or args[0] not in _MODES or len(args) > 2:
                return {"ok": False, "error": f"usage: mode {'|'.join(_MODES)} [SECONDS]"}
            seconds = float(args[1]) if len(args) == 2 else None
            session.set_mode(args[0], seconds)
            return {"ok": True, "mode": session.mode, "for_s": seconds}
        if command == "dump":
            incident = session.dump(" ".join(args), trigger="control")
            return {"ok": True, "incident_id": incident, "suppressed": incident is None}
        if command == "snapshot" and not args:
            return {"ok": True, "snapshot_id": session.inspector.snapshot()}
        if command == "status" and not args:
            return {"ok": True, **status(session)}
    except (ValueError, RuntimeError) as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": False, "error": f"unknown command {command!r} (mode, dump, snapshot, status)"}


def status(session: Session) -> dict[str, Any]:
    """What ``status`` reports."""
    out: dict[str, Any] = {
        "pid": os.getpid(),
        "mode": session.mode,
        "configured_mode": session.config.mode,
        "implementation": session.implementation,
    }
    recorder = session.recorder
    if recorder is not None:
        out["recorder"] = {
            "records": len(recorder),
            "bytes": recorder.bytes,
            "incidents": recorder.incidents,
            "suppressed": recorder.suppressed_total,
        }
    return out


class ControlServer:
    """The socket and the thread that serves it."""

    def __init__(self, path: str, sock: socket.socket, session: Session) -> None:
        self.path = path
        self._sock = sock
        self._session = session
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="coroscope-control", daemon=True)

    @classmethod
    def start(cls, path: str, session: Session) -> ControlServer:
        """Create the socket at ``path`` and serve it; raises ``OSError``."""
        if not hasattr(socket, "AF_UNIX"):
            raise OSError("Unix sockets are not available on this platform")
        _clear_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)
            sock.listen(8)
        except BaseException:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        server = cls(path, sock, session)
        server._thread.start()
        return server

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._stop.is_set():
                    return
                continue
            try:
                with conn:
                    self._answer(conn)
            except Exception as exc:  # a thread of coroscope's: say it, keep serving
                warn(f"coroscope: control command failed ({type(exc).__name__}: {exc})")

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(_TIMEOUT_S)
        if not _same_user(conn):
            reply: dict[str, Any] = {"ok": False, "error": "not the owner of this process"}
        else:
            data = b""
            while b"\n" not in data and len(data) <= MAX_COMMAND:
                chunk = conn.recv(MAX_COMMAND + 1 - len(data))
                if not chunk:
                    break
                data += chunk
            line, _, _ = data.partition(b"\n")
            if len(line) > MAX_COMMAND:
                reply = {"ok": False, "error": f"command longer than {MAX_COMMAND} bytes"}
            else:
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    reply = {"ok": False, "error": "command is not UTF-8 text"}
                else:
                    reply = run_command(self._session, text)
        conn.sendall(orjson.dumps(reply) + b"\n")

    def close(self) -> None:
        """Stop serving and remove the socket file."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(_TIMEOUT_S)

    def forget_after_fork(self) -> None:
        """In a forked child: close the inherited socket; the file is the parent's."""
        self._stop.set()
        self._sock.close()


def _clear_stale(path: str) -> None:
    """Remove a socket left by a process that is gone; refuse any other file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise FileExistsError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: stale
        return
    finally:
        probe.close()
    raise FileExistsError(f"{path} is served by another process")


def _same_user(conn: socket.socket) -> bool:
    """Whether the peer runs as this process's user or root (always, where unknown)."""
    if not sys.platform.startswith("linux"):
        return True  # the socket file's 0600 permissions are the check
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    return uid in (os.getuid(), 0)
