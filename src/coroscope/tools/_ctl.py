"""The ``coroscope ctl`` command: send one command to a running process's control socket."""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

import orjson

__all__ = ["register", "send"]


def send(path: str, command: str, timeout: float = 5.0) -> dict[str, Any]:
    """Send ``command`` to the control socket at ``path``; the reply.  Raises ``OSError``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = orjson.loads(data)
    return reply


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ctl",
        help="control a running process through its COROSCOPE_CONTROL socket",
        description=(
            "Send one command to a process run with COROSCOPE_CONTROL=PATH: "
            "'mode MODE [--for SECONDS]', 'dump [--reason TEXT]', 'snapshot' or 'status'."
        ),
    )
    parser.add_argument("path", metavar="PATH", help="the control socket")
    commands = parser.add_subparsers(dest="ctl_command", required=True)
    mode = commands.add_parser("mode", help="switch mode (back after --for SECONDS)")
    mode.add_argument("mode", choices=("all", "slow", "watch", "recorder"))
    mode.add_argument("--for", dest="seconds", type=float, metavar="SECONDS")
    dump = commands.add_parser("dump", help="write an incident (recorder mode)")
    dump.add_argument("--reason", default="", help="why (written in the incident record)")
    commands.add_parser("snapshot", help="a snapshot of every task")
    commands.add_parser("status", help="mode, implementation and recorder ring")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.ctl_command == "mode":
        command = f"mode {args.mode}" + (f" {args.seconds:g}" if args.seconds else "")
    elif args.ctl_command == "dump":
        command = f"dump {' '.join(args.reason.split())}".strip()
    else:
        command = args.ctl_command
    try:
        reply = send(args.path, command)
    except (OSError, ValueError) as exc:
        print(f"coroscope ctl: {args.path}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(orjson.dumps(reply, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0 if reply.get("ok") else 1
