"""Sinks: where rendered records go, on the writer thread.

:mod:`._contract` is what a sink promises the writer; :mod:`._outputs` parses the output
setting; one module per transport: :mod:`._local` (standard streams, files), :mod:`._tcp`
(JSON lines over TCP, and the reconnecting stream every TCP output shares),
:mod:`._syslog` and :mod:`._otlp`.  :func:`open_sink` picks the factory of an output's kind
from :data:`FACTORIES`; a transport's module is imported only when it is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from ._contract import PartialWrite, Sink, level_at
from ._outputs import Output, parse_output

__all__ = ["FACTORIES", "Output", "PartialWrite", "Sink", "SinkOptions", "level_at", "open_sink"]


class SinkOptions:
    """What a sink factory needs besides the output itself."""

    __slots__ = ("resend_bytes", "service", "timeout")

    def __init__(self, *, service: str, timeout: float, resend_bytes: int) -> None:
        self.service = service
        self.timeout = timeout
        self.resend_bytes = resend_bytes


def _stream(spec: Output, options: SinkOptions) -> Sink:
    from ._local import StreamSink

    return StreamSink(spec.kind)


def _file(spec: Output, options: SinkOptions) -> Sink:
    from ._local import FileSink

    sink = FileSink(os.path.expanduser(spec.path))
    sink.open()  # files are opened at once, to report errors early
    return sink


def _tcp(spec: Output, options: SinkOptions) -> Sink:
    from ._tcp import TcpJsonSink

    return TcpJsonSink(
        spec.host, spec.port, timeout=options.timeout, resend_bytes=options.resend_bytes
    )


def _syslog_tcp(spec: Output, options: SinkOptions) -> Sink:
    from ._syslog import SyslogTcpSink

    return SyslogTcpSink(
        spec.host,
        spec.port,
        app_name=options.service,
        timeout=options.timeout,
        resend_bytes=options.resend_bytes,
    )


def _syslog_udp(spec: Output, options: SinkOptions) -> Sink:
    from ._syslog import SyslogUdpSink

    return SyslogUdpSink(spec.host, spec.port, app_name=options.service, timeout=options.timeout)


def _otlp_http(spec: Output, options: SinkOptions) -> Sink:
    from ._otlp import OtlpHttpSink

    return OtlpHttpSink(
        spec.host, spec.port, spec.path, service=options.service, timeout=options.timeout
    )


#: The factory of each output kind (see :mod:`._outputs`).
FACTORIES: Mapping[str, Callable[[Output, SinkOptions], Sink]] = {
    "stderr": _stream,
    "stdout": _stream,
    "file": _file,
    "tcp": _tcp,
    "syslog+tcp": _syslog_tcp,
    "syslog+udp": _syslog_udp,
    "otlp+http": _otlp_http,
}


def open_sink(
    output: str,
    *,
    service: str = "",
    timeout: float,
    resend_bytes: int,
    environ: Mapping[str, str] | None = None,
) -> Sink:
    """The sink for an output setting.

    Files are opened at once, to report errors early (``OSError``); network outputs
    connect on their first batch, on the writer thread.  ``service`` names the program to
    aggregators (syslog APP-NAME, OTLP ``service.name``); empty means ``OTEL_SERVICE_NAME``
    from ``environ`` (by default the process environment).
    """
    spec = parse_output(output)
    factory = FACTORIES.get(spec.kind)
    if factory is None:  # parse_output and this table disagree: a bug, said plainly
        raise ValueError(f"no sink for outputs of kind {spec.kind!r}")
    env = os.environ if environ is None else environ
    service = service or env.get("OTEL_SERVICE_NAME", "").strip()
    return factory(spec, SinkOptions(service=service, timeout=timeout, resend_bytes=resend_bytes))
