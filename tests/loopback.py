"""A stand-in for Microsoft Entra ID, Microsoft Graph and a webhook receiver, on 127.0.0.1.

For tests and benchmarks that run m365watch as a real subprocess (where
`responses` cannot reach). It serves HTTPS with a self-signed certificate for
127.0.0.1; point ``REQUESTS_CA_BUNDLE`` at :attr:`FakeMicrosoft.ca_bundle`.
Only loopback; the server stops with :meth:`stop` (or the context manager).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TENANT = "contoso.onmicrosoft.com"
TENANT_GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
ISSUES_PATH = "/v1.0/admin/serviceAnnouncement/issues"
HEALTH_PATH = "/v1.0/admin/serviceAnnouncement/healthOverviews"
MESSAGES_PATH = "/v1.0/admin/serviceAnnouncement/messages"
# A dribbled answer stops by itself after this long, whoever is still listening.
DRIBBLE_MAX_SECONDS = 60.0
# A dribbled answer is padded to this many bytes, so it never finishes within a test.
DRIBBLE_BYTES = 400


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "loopback-cert.pem", folder / "loopback-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class FakeMicrosoft:
    """Entra ID token endpoint + Graph service-health endpoints + webhook receivers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca_bundle, self._key = make_certificate(folder)
        self.issues: list[dict[str, Any]] = []
        self.health: list[dict[str, Any]] = []
        # Faults served (in order) instead of the next Graph answers: (status, body, headers).
        self.graph_faults: collections.deque[tuple[int, str, dict[str, str]]] = collections.deque()
        # Webhook names that answer 500 while listed.
        self.failing_hooks: set[str] = set()
        # Seconds each Graph / webhook answer waits (to widen windows in crash tests).
        self.graph_delay = 0.0
        self.hook_delay = 0.0
        # When set, the token endpoint answers 400 with this function of the request's form
        # body as the error description: a broken proxy that quotes the request back.
        self.token_echo: Callable[[str], str] | None = None
        # Seconds between the bytes of each Graph / token / dribbling webhook answer (0: at once):
        # the headers come at once, then the body one byte at a time.
        self.graph_dribble = 0.0
        self.token_dribble = 0.0
        self.hook_dribble = 0.0
        self.dribbling_hooks: set[str] = set()
        # Bytes of a huge Graph answer (0: off), sent in 1 MiB chunks; chunked transfer
        # encoding unless ``huge_declared`` (then Content-Length says the size first).
        self.huge_graph = 0
        self.huge_declared = False
        # Body bytes each kind of answer ("graph", "token", "hook") got out before the
        # client closed the connection (or it ended).
        self.sent: collections.Counter[str] = collections.Counter()
        self.closed_early: collections.Counter[str] = collections.Counter()
        self._stopping = threading.Event()
        # (webhook name, n): that webhook's n-th request is held open, unanswered and not
        # counted as received, until ``release`` is set (or 30 s pass); ``held`` says it came.
        self.hold: tuple[str, int] | None = None
        self.held = threading.Event()
        self.release = threading.Event()
        self.counts: collections.Counter[str] = collections.Counter()
        # Post-incident reports served at .../issues/ID/incidentReport (404 for others),
        # each after ``report_delay`` seconds; when each webhook request came (monotonic).
        self.reports: dict[str, bytes] = {}
        self.report_delay = 0.0
        self.hook_times: dict[str, list[float]] = collections.defaultdict(list)
        self.hooks: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        self.token = "loopback-access-token"
        # Many tenants: the token endpoint signs in any tenant path, and each tenant's token
        # picks its Graph data. Per tenant (by the tenant_id in the path): the issues and
        # Message center posts served (default: ``issues``, ``messages``), a sign-in
        # refused with this error description, a Graph fault answered to every request.
        self.messages: list[dict[str, Any]] = []
        self.tenant_issues: dict[str, list[dict[str, Any]]] = {}
        self.tenant_messages: dict[str, list[dict[str, Any]]] = {}
        self.refused_tenants: dict[str, str] = {}
        self.tenant_faults: dict[str, tuple[int, str, dict[str, str]]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._http: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def hook_base(self) -> str:
        """Plain-http receivers: Apprise's json:// plugin posts to ``json://127.0.0.1:PORT/hooks/NAME``."""
        assert self._http is not None
        return f"127.0.0.1:{self._http.server_address[1]}"

    def hook_url(self, name: str) -> str:
        return f"json://{self.hook_base}/hooks/{name}"

    def start(self) -> FakeMicrosoft:
        handler = self._handler()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_bundle, self._key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for s in (self._server, self._http)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for server in (self._server, self._http):
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FakeMicrosoft:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def config_text(self, state_path: Path, notify: str = "", extra: str = "") -> str:
        """A config file pointing m365watch at this server."""
        return (
            f'[tenant]\ntenant_id = "{TENANT}"\nclient_id = "{CLIENT_ID}"\n'
            'client_secret = "${M365WATCH_CLIENT_SECRET}"\n'
            f'authority = "{self.base_url}"\ngraph_endpoint = "{self.base_url}"\n\n'
            f'[state]\npath = "{state_path}"\n{extra}\n{notify}'
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                if "Content-Type" not in (headers or {}):
                    self.send_header("Content-Type", "application/json")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _dribble(self, kind: str, body: str, interval: float) -> None:
                """Headers at once, then the body a byte every ``interval`` seconds (bounded)."""
                data = body.encode().rjust(DRIBBLE_BYTES)  # leading spaces: still valid JSON
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.flush()
                started = time.monotonic()
                try:
                    for byte in data:
                        if fake._stopping.wait(interval):
                            break
                        if time.monotonic() - started > DRIBBLE_MAX_SECONDS:
                            break
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        with fake._lock:
                            fake.sent[kind] += 1
                except OSError:
                    with fake._lock:
                        fake.closed_early[kind] += 1
                self.close_connection = True

            def _huge(self) -> None:
                """``huge_graph`` bytes of (never finished) JSON, 1 MiB at a time."""
                chunk = b"[" + b" " * (1024 * 1024 - 1)
                total = fake.huge_graph
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if fake.huge_declared:
                    self.send_header("Content-Length", str(total))
                else:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    left = total
                    while left > 0 and not fake._stopping.is_set():
                        piece = chunk[: min(left, len(chunk))]
                        if fake.huge_declared:
                            self.wfile.write(piece)
                        else:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        left -= len(piece)
                        with fake._lock:
                            fake.sent["graph"] += len(piece)
                    if not fake.huge_declared:
                        self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    with fake._lock:
                        fake.closed_early["graph"] += 1
                self.close_connection = True

            def _report(self, path: str) -> None:
                issue_id = path.rsplit("/", 2)[-2]
                with fake._lock:
                    fake.counts["report"] += 1
                if fake._stopping.wait(fake.report_delay):
                    return
                data = fake.reports.get(issue_id)
                if data is None:
                    self._send(404, json.dumps({"error": {"code": "NotFound", "message": ""}}))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pdf")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(data)

            def _one(self, path: str, tenant: str) -> None:
                """One issue or post by id, as the tenant has it; 404 when it has none."""
                collection, _, wanted = path.rpartition("/")
                if collection == ISSUES_PATH:
                    items = fake.tenant_issues.get(tenant, fake.issues)
                else:
                    items = fake.tenant_messages.get(tenant, fake.messages)
                found = next((i for i in items if i.get("id") == wanted), None)
                if found is None:
                    body = {"error": {"code": "NotFound", "message": f"{wanted} not found"}}
                    self._send(404, json.dumps(body))
                else:
                    self._send(200, json.dumps(found))

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path.endswith("/incidentReport"):
                    self._report(path)
                elif path.endswith("/.well-known/openid-configuration"):
                    with fake._lock:
                        fake.counts["openid"] += 1
                    tenant = _tenant_in(path)
                    base = f"{fake.base_url}/{TENANT_GUID if tenant == TENANT else tenant}"
                    self._send(200, json.dumps(_openid(base)))
                elif path in (ISSUES_PATH, HEALTH_PATH, MESSAGES_PATH) or path.startswith(
                    (f"{ISSUES_PATH}/", f"{MESSAGES_PATH}/")
                ):
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    tenant = token.partition("~")[2] or TENANT
                    with fake._lock:
                        fake.counts["graph"] += 1
                        fake.counts[f"graph:{tenant}"] += 1
                        fault = fake.graph_faults.popleft() if fake.graph_faults else None
                        fault = fault or fake.tenant_faults.get(tenant)
                    time.sleep(fake.graph_delay)
                    if fault is not None:
                        self._send(*fault)
                        return
                    if path.startswith((f"{ISSUES_PATH}/", f"{MESSAGES_PATH}/")):
                        self._one(path, tenant)
                        return
                    if path == ISSUES_PATH:
                        items = fake.tenant_issues.get(tenant, fake.issues)
                    elif path == MESSAGES_PATH:
                        items = fake.tenant_messages.get(tenant, fake.messages)
                    else:
                        items = fake.health
                    if fake.huge_graph:
                        self._huge()
                    elif fake.graph_dribble:
                        self._dribble("graph", json.dumps({"value": items}), fake.graph_dribble)
                    else:
                        self._send(200, json.dumps({"value": items}))
                else:
                    self._send(404, json.dumps({"error": {"code": "NotFound", "message": path}}))

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                if path.endswith("/oauth2/v2.0/token"):
                    with fake._lock:
                        fake.counts["token"] += 1
                    form = parse_qs(raw)
                    tenant = _tenant_in(path)
                    refused = fake.refused_tenants.get(tenant)
                    if refused is not None:
                        self._send(
                            400,
                            json.dumps(
                                {"error": "unauthorized_client", "error_description": refused}
                            ),
                        )
                        return
                    if fake.token_echo is not None:
                        said = fake.token_echo(raw)
                        self._send(
                            400, json.dumps({"error": "invalid_request", "error_description": said})
                        )
                        return
                    if form.get("client_id") != [CLIENT_ID]:
                        self._send(400, json.dumps({"error": "unauthorized_client"}))
                        return
                    token = fake.token if tenant == TENANT else f"{fake.token}~{tenant}"
                    body = {"token_type": "Bearer", "expires_in": 3599, "access_token": token}
                    if fake.token_dribble:
                        self._dribble("token", json.dumps(body), fake.token_dribble)
                    else:
                        self._send(200, json.dumps(body))
                elif path.startswith("/hooks/"):
                    name = path.split("/")[2]
                    with fake._lock:
                        fake.hook_times[name].append(time.monotonic())
                        fake.counts[f"hook:{name}"] += 1
                        held = fake.hold == (name, fake.counts[f"hook:{name}"])
                    if held:
                        fake.held.set()
                        fake.release.wait(timeout=30)
                        self._send(500, "{}")
                        return
                    time.sleep(fake.hook_delay)
                    if name in fake.dribbling_hooks:
                        # Received, but never answered in full: not accepted.
                        self._dribble("hook", "{}", fake.hook_dribble or 0.5)
                        return
                    with fake._lock:
                        if name in fake.failing_hooks:
                            self._send(500, "{}")
                            return
                        fake.hooks[name].append(json.loads(raw or "{}"))
                    self._send(200, "{}")
                else:
                    self._send(404, "{}")

        return Handler


def _tenant_in(path: str) -> str:
    """The tenant a sign-in path names (``/contoso.onmicrosoft.com/v2.0/...``)."""
    tenant = path.lstrip("/").partition("/")[0]
    return TENANT if tenant == TENANT_GUID else tenant


def _openid(base: str) -> dict[str, Any]:
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
        "issuer": f"{base}/v2.0",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "response_types_supported": ["code", "id_token"],
        "scopes_supported": ["openid"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
