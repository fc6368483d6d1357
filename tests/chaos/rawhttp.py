"""Raw-socket HTTP for the chaos tests: send exactly the bytes a careless or hostile client would,
and read back whatever the gateway answers (or that it closed the connection)."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawReply:
    """What came back: ``status`` None when the connection closed (or stayed silent) without a response."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    closed: bool = False  # the server closed the connection after (or instead of) answering

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> dict[str, Any]:
        """The OpenAI error object (fails the test if the body is not one)."""
        body = self.json()
        assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"]), body
        return body["error"]  # type: ignore[no-any-return]


def _parse(buf: bytes) -> tuple[int, dict[str, str], bytes] | None:
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        return (status, headers, rest[:n]) if len(rest) >= n else None
    return None  # chunked or close-delimited: read to the end


def exchange(port: int, parts: list[bytes] | bytes, pause_s: float = 0.0, wait_s: float = 15.0) -> RawReply:
    """Send ``parts`` (with ``pause_s`` between them) and read one response, for at most ``wait_s``."""
    parts = [parts] if isinstance(parts, bytes) else parts
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        try:
            for i, part in enumerate(parts):
                if i and pause_s:
                    time.sleep(pause_s)
                s.sendall(part)
        except OSError:  # the server answered and closed while we were still sending
            pass
        buf = b""
        closed = False
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
            parsed = _parse(buf)
            if parsed is not None:
                status, headers, body = parsed
                return RawReply(status, headers, body, time.perf_counter() - start,
                                closed=headers.get("connection") == "close")
        seconds = time.perf_counter() - start
    if buf.startswith(b"HTTP/"):
        head, _, body = buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in head.decode("latin-1").split("\r\n")[1:])}
        return RawReply(status, headers, body, seconds, closed)
    return RawReply(None, {}, buf, seconds, closed)


def request(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            content_length: int | None = None) -> bytes:
    """A request's bytes; ``content_length`` overrides the true length (a lying client)."""
    h = {"Host": "127.0.0.1", **(headers or {})}
    if body is not None:
        h.setdefault("Content-Type", "application/json")
        h["Content-Length"] = str(len(body) if content_length is None else content_length)
    lines = [f"{method} {path} HTTP/1.1", *[f"{k}: {v}" for k, v in h.items()], "", ""]
    return "\r\n".join(lines).encode("latin-1") + (body or b"")
