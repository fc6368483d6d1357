"""A minimal OTLP/HTTP trace receiver on loopback, for the tests and the benchmark (not a collector).

Accepts ``POST /v1/traces`` with an ``ExportTraceServiceRequest`` in protobuf (gzip or not), answers
as a collector does, and keeps the spans it decoded (or only counts them, for load). Runs in a thread
of the caller's process::

    with OtlpReceiver() as rx:             # rx.endpoint = http://127.0.0.1:PORT
        ...                                # point OTEL_EXPORTER_OTLP_ENDPOINT or tracing.endpoint at it
        rx.wait_for(lambda spans: ..., timeout_s=10)
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass
class ReceivedSpan:
    """One exported span, with ids in hex as ``traceparent`` writes them."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any] = field(default_factory=dict)
    status_code: int = 0


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which) if which else None


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one OTLP/HTTP protobuf export request."""
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    out = []
    for rs in req.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(ReceivedSpan(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.kind,
                                        {kv.key: _value(kv.value) for kv in s.attributes}, resource, s.status.code))
    return out


class OtlpReceiver:
    """The receiver; ``keep=False`` only counts spans (cheap under load)."""

    def __init__(self, port: int = 0, keep: bool = True) -> None:
        self.spans: list[ReceivedSpan] = []
        self.count = 0
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                try:
                    spans = decode(body)
                except Exception:  # not an OTLP request: a collector answers 400
                    self.send_error(400)
                    return
                with receiver._lock:
                    receiver.requests += 1
                    receiver.count += len(spans)
                    if keep:
                        receiver.spans.extend(spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "OtlpReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "OtlpReceiver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, done: Callable[[list[ReceivedSpan]], bool], timeout_s: float = 15.0) -> list[ReceivedSpan]:
        """The spans received so far, once ``done(spans)`` holds (AssertionError after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                spans = list(self.spans)
            if done(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"OTLP receiver: condition not met within {timeout_s}s "
                                     f"({len(spans)} spans: {sorted({s.name for s in spans})})")
            time.sleep(0.05)


def main() -> None:
    """``python -m devtools.otlp_receiver --port P``: count spans until interrupted (for load tests)."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=4318)
    args = ap.parse_args()
    rx = OtlpReceiver(args.port, keep=False).start()
    print(f"OTLP/HTTP receiver on {rx.endpoint}/v1/traces", flush=True)
    try:
        while True:
            time.sleep(5)
            print(f"{rx.requests} export requests, {rx.count} spans", flush=True)
    except KeyboardInterrupt:
        rx.stop()


if __name__ == "__main__":
    main()
