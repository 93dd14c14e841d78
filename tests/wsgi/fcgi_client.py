"""A small, strict FastCGI client for black-box tests of pyfcgi (standard library only).

It speaks the Responder role: BEGIN_REQUEST, PARAMS (name/value pairs with 1- and 4-byte lengths), STDIN streamed in
records of a chosen size, ABORT_REQUEST; and reads STDOUT, STDERR and END_REQUEST. Every read has a timeout. Framing
is verified as records arrive: version 1, the right request id, whole records, no STDOUT after the empty STDOUT that
ends the stream, exactly one empty STDOUT before END_REQUEST, an 8-byte END_REQUEST body. Any violation raises
:class:`ProtocolViolation`; a connection that ends before END_REQUEST is reported (``Response.ended`` is False) so tests
can assert on it, and raises unless the caller allows it.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional, Union

VERSION = 1
BEGIN_REQUEST = 1
ABORT_REQUEST = 2
END_REQUEST = 3
PARAMS = 4
STDIN = 5
STDOUT = 6
STDERR = 7
DATA = 8
GET_VALUES = 9
GET_VALUES_RESULT = 10
UNKNOWN_TYPE = 11

RESPONDER = 1
KEEP_CONN = 1

MAX_CONTENT = 65535
HEADER = struct.Struct(">BBHHBB")

TYPE_NAMES = {
    1: "BEGIN_REQUEST", 2: "ABORT_REQUEST", 3: "END_REQUEST", 4: "PARAMS", 5: "STDIN", 6: "STDOUT",
    7: "STDERR", 8: "DATA", 9: "GET_VALUES", 10: "GET_VALUES_RESULT", 11: "UNKNOWN_TYPE",
}

Text = Union[str, bytes]


class ProtocolViolation(AssertionError):
    """The server broke FastCGI framing or the CGI response format."""


class Timeout(AssertionError):
    """The server did not answer within the timeout."""


def _b(value: Text) -> bytes:
    """Params are bytes on the wire; str is encoded as latin-1 so tests can write any byte as a code point."""
    return value if isinstance(value, bytes) else value.encode("latin-1")


def encode_length(n: int) -> bytes:
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def encode_pairs(pairs: Iterable[tuple[Text, Text]]) -> bytes:
    out = bytearray()
    for name, value in pairs:
        name, value = _b(name), _b(value)
        out += encode_length(len(name)) + encode_length(len(value)) + name + value
    return bytes(out)


def decode_pairs(data: bytes) -> dict[bytes, bytes]:
    out, i = {}, 0
    while i < len(data):
        lengths = []
        for _ in range(2):
            if data[i] < 128:
                lengths.append(data[i])
                i += 1
            else:
                lengths.append(struct.unpack(">I", data[i:i + 4])[0] & 0x7FFFFFFF)
                i += 4
        name = data[i:i + lengths[0]]
        i += lengths[0]
        out[name] = data[i:i + lengths[1]]
        i += lengths[1]
    return out


@dataclass
class Record:
    type: int
    request_id: int
    content: bytes
    at: float  # time.monotonic() when the record was complete

    def __repr__(self) -> str:
        return f"Record({TYPE_NAMES.get(self.type, self.type)}, id={self.request_id}, {len(self.content)} bytes)"


@dataclass
class Response:
    records: list[Record] = field(default_factory=list)
    stdout: bytes = b""
    stderr: bytes = b""
    ended: bool = False  # END_REQUEST arrived
    app_status: Optional[int] = None
    protocol_status: Optional[int] = None
    status: Optional[int] = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    head_complete: bool = False  # the CGI header block was terminated by a blank line

    def header(self, name: str) -> Optional[str]:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        import json

        return json.loads(self.body)

    def stdout_times(self) -> list[float]:
        return [r.at for r in self.records if r.type == STDOUT and r.content]

    def __repr__(self) -> str:
        return (f"Response(status={self.status}, ended={self.ended}, headers={self.headers!r}, "
                f"body={self.body[:300]!r}{'...' if len(self.body) > 300 else ''}, stderr={self.stderr[:300]!r})")


def parse_cgi(stdout: bytes, resp: Response) -> None:
    """Parses a CGI response (``Status:`` line, headers, blank line, body) into ``resp``, strictly."""
    end = stdout.find(b"\r\n\r\n")
    if end < 0:
        resp.head_complete = False
        resp.body = b""
        if stdout:
            raise ProtocolViolation(f"CGI header block is not terminated by a blank line: {stdout[:500]!r}")
        return
    resp.head_complete = True
    head, resp.body = stdout[:end], stdout[end + 4:]
    resp.status = 200
    for line in head.split(b"\r\n"):
        if b"\n" in line or b"\r" in line:
            raise ProtocolViolation(f"bare CR or LF in header line {line!r}")
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or any(c <= 32 or c >= 127 for c in name):
            raise ProtocolViolation(f"malformed header line {line!r}")
        name_s, value_s = name.decode("latin-1"), value.strip().decode("latin-1")
        if name_s.lower() == "status":
            code, _, reason = value_s.partition(" ")
            if len(code) != 3 or not code.isdigit():
                raise ProtocolViolation(f"malformed Status header {line!r}")
            resp.status, resp.reason = int(code), reason
        else:
            resp.headers.append((name_s, value_s))


class Connection:
    """One FastCGI connection to the server (Unix socket path or (host, port))."""

    def __init__(self, address: Union[str, tuple], timeout: float = 15.0):
        self.timeout = timeout
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self._buf = bytearray()
        self._next_id = 1
        self.eof = False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- writing ----

    def send_record(self, rtype: int, request_id: int, content: bytes = b"", padding: int = 0) -> None:
        assert len(content) <= MAX_CONTENT
        self.sock.sendall(HEADER.pack(VERSION, rtype, request_id, len(content), padding, 0) + content + b"\0" * padding)

    def send_stream(self, rtype: int, request_id: int, data: bytes, record_size: int = 8192) -> None:
        """Sends ``data`` as records of at most ``record_size`` bytes, then the empty record that ends the stream."""
        assert 1 <= record_size <= MAX_CONTENT
        view = memoryview(data)
        for i in range(0, len(data), record_size):
            chunk = bytes(view[i:i + record_size])
            self.send_record(rtype, request_id, chunk, padding=(-len(chunk)) % 8)
        self.send_record(rtype, request_id, b"")

    def begin(self, params: dict, keep_conn: bool = False, request_id: Optional[int] = None,
              params_record_size: int = MAX_CONTENT) -> int:
        """Sends BEGIN_REQUEST and all PARAMS; returns the request id."""
        if request_id is None:
            request_id = self._next_id
            self._next_id = self._next_id % 65535 + 1
        self.send_record(BEGIN_REQUEST, request_id, struct.pack(">HB5x", RESPONDER, KEEP_CONN if keep_conn else 0))
        self.send_stream(PARAMS, request_id, encode_pairs(params.items()), params_record_size)
        return request_id

    def send_body(self, request_id: int, body: bytes = b"", record_size: int = 8192) -> None:
        self.send_stream(STDIN, request_id, body, record_size)

    def send_body_chunks(self, request_id: int, chunks: Iterable[bytes]) -> None:
        """Sends each chunk as exactly one STDIN record (chunks must be 1..65535 bytes), then the end of the body."""
        for chunk in chunks:
            self.send_record(STDIN, request_id, chunk)
        self.send_record(STDIN, request_id, b"")

    def abort(self, request_id: int) -> None:
        self.send_record(ABORT_REQUEST, request_id)

    # ---- reading ----

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout(f"no complete record within {self.timeout}s (have {len(self._buf)} bytes)")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(262144)
        except socket.timeout:
            raise Timeout(f"no complete record within {self.timeout}s (have {len(self._buf)} bytes)") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self._buf += data
        return True

    def read_record(self, timeout: Optional[float] = None) -> Optional[Record]:
        """The next whole record, or None at end of stream on a record boundary."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            if len(self._buf) >= 8:
                version, rtype, rid, clen, plen, _ = HEADER.unpack(self._buf[:8])
                if version != VERSION:
                    raise ProtocolViolation(f"record version {version}")
                total = 8 + clen + plen
                if len(self._buf) >= total:
                    content = bytes(self._buf[8:8 + clen])
                    del self._buf[:total]
                    return Record(rtype, rid, content, time.monotonic())
            if not self._fill(deadline):
                if self._buf:
                    raise ProtocolViolation(f"connection ended inside a record ({len(self._buf)} bytes pending)")
                return None

    def records(self, request_id: int, timeout: Optional[float] = None) -> Iterator[Record]:
        """Yields the request's records as they arrive, until END_REQUEST or end of stream, checking framing."""
        stdout_closed = stderr_closed = False
        while True:
            rec = self.read_record(timeout)
            if rec is None:
                return
            if rec.request_id != request_id:
                raise ProtocolViolation(f"{rec!r} for another request (expected id {request_id})")
            if rec.type == STDOUT:
                if stdout_closed:
                    raise ProtocolViolation(f"{rec!r} after the empty STDOUT that ended the stream")
                stdout_closed = not rec.content
            elif rec.type == STDERR:
                if stderr_closed and rec.content:
                    raise ProtocolViolation(f"{rec!r} after the empty STDERR that ended the stream")
                stderr_closed = stderr_closed or not rec.content
            elif rec.type == END_REQUEST:
                if not stdout_closed:
                    raise ProtocolViolation("END_REQUEST without exactly one empty STDOUT before it")
                if len(rec.content) != 8:
                    raise ProtocolViolation(f"END_REQUEST body of {len(rec.content)} bytes")
            else:
                raise ProtocolViolation(f"unexpected {rec!r}")
            yield rec
            if rec.type == END_REQUEST:
                return

    def read_response(self, request_id: int, allow_incomplete: bool = False,
                      timeout: Optional[float] = None) -> Response:
        resp = Response()
        out, err = bytearray(), bytearray()
        for rec in self.records(request_id, timeout):
            resp.records.append(rec)
            if rec.type == STDOUT:
                out += rec.content
            elif rec.type == STDERR:
                err += rec.content
            elif rec.type == END_REQUEST:
                resp.ended = True
                resp.app_status, resp.protocol_status = struct.unpack(">IB3x", rec.content)
        resp.stdout, resp.stderr = bytes(out), bytes(err)
        if not resp.ended and not allow_incomplete:
            raise ProtocolViolation(f"connection ended without END_REQUEST; stdout so far: {resp.stdout[:500]!r}")
        if resp.ended or resp.stdout.find(b"\r\n\r\n") >= 0:
            parse_cgi(resp.stdout, resp)
        return resp

    def request(self, params: dict, body: bytes = b"", keep_conn: bool = False, record_size: int = 8192,
                allow_incomplete: bool = False, timeout: Optional[float] = None) -> Response:
        rid = self.begin(params, keep_conn=keep_conn)
        try:
            self.send_body(rid, body, record_size)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer (and close) before it has read the whole request, as web servers allow;
            # what it sent is still readable.
            pass
        return self.read_response(rid, allow_incomplete=allow_incomplete, timeout=timeout)

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """Whether the server closes the connection (with nothing more sent) within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                if not self._fill(deadline):
                    break
            except Timeout:
                return False
        if self._buf:
            raise ProtocolViolation(f"unexpected bytes before close: {bytes(self._buf[:100])!r}")
        return True

    def get_values(self, names: Iterable[str]) -> dict[bytes, bytes]:
        self.send_record(GET_VALUES, 0, encode_pairs((n, "") for n in names))
        rec = self.read_record()
        if rec is None or rec.type != GET_VALUES_RESULT or rec.request_id != 0:
            raise ProtocolViolation(f"expected GET_VALUES_RESULT, got {rec!r}")
        return decode_pairs(rec.content)


def cgi_params(path: Text = "/", query: Text = "", method: str = "GET", body_len: Optional[int] = None,
               content_type: str = "", headers: Optional[dict] = None, extra: Optional[dict] = None,
               iis: Optional[dict] = None) -> dict:
    """A realistic parameter set as nginx sends it, or as IIS does when ``iis`` gives the IIS-only values
    (``{'APPL_PHYSICAL_PATH': ..., 'APPL_MD_PATH': ...}``; PATH_INFO and SCRIPT_NAME then both carry the full path,
    as IIS does for a wildcard handler)."""
    path_b, query_b = _b(path), _b(query)
    uri = path_b + (b"?" + query_b if query_b else b"")
    p: dict = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "nginx/1.22.1",
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path_b,
        "QUERY_STRING": query_b,
        "REQUEST_URI": uri,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(body_len) if body_len is not None else "",
        "HTTP_HOST": "localhost",
    }
    if iis is not None:
        p.update({
            "SERVER_SOFTWARE": "Microsoft-IIS/10.0",
            "SCRIPT_NAME": path_b,
            "URL": path_b,
            "HTTPS": "off",
            "INSTANCE_ID": "1",
            "INSTANCE_META_PATH": "/LM/W3SVC/1",
            "APPL_MD_PATH": "/LM/W3SVC/1/ROOT",
            "CONTENT_LENGTH": str(body_len or 0),
        })
        p.update(iis)
    for name, value in (headers or {}).items():
        p["HTTP_" + name.upper().replace("-", "_")] = value
    p.update(extra or {})
    return p
