"""A stand-in for Microsoft Entra ID, Microsoft Graph and a webhook receiver, on 127.0.0.1.

For tests and benchmarks that run m365watch as a real subprocess (where
`responses` cannot reach). It serves HTTPS with a self-signed certificate for
127.0.0.1; point ``REQUESTS_CA_BUNDLE`` at :attr:`FakeMicrosoft.ca_bundle`.
Only loopback; the server stops with :meth:`stop` (or the context manager).

:class:`FakeTenants` is the same server serving several tenants: a discovery
document and token endpoint per tenant path, Graph data chosen by the token,
and per-tenant faults (withdrawn consent, unknown tenant, 403, 429, delays).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import ipaddress
import json
import re
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
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

_Server = TypeVar("_Server", bound="FakeMicrosoft")


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
        # Message center posts, served ``messages_page`` at a time with @odata.nextLink.
        self.messages: list[dict[str, Any]] = []
        self.messages_page = 1000
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

    def start(self: _Server) -> _Server:
        handler = self._handler()
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_bundle, self._key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._http = _QuietServer(("127.0.0.1", 0), handler)
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

    def __enter__(self: _Server) -> _Server:
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

    def _answer_get(self, handler: BaseHTTPRequestHandler, path: str) -> bool:
        """Answer a GET before the paths below (a subclass's own routes); False: not mine."""
        return False

    def _answer_post(self, handler: BaseHTTPRequestHandler, path: str, raw: str) -> bool:
        """Answer a POST before the paths below (a subclass's own routes); False: not mine."""
        return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
                send(self, status, body, headers)

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

            def _messages(self, messages: list[dict[str, Any]]) -> None:
                """The Message center, ``messages_page`` posts a page (counted in "graph" too)."""
                query = parse_qs(urlsplit(self.path).query)
                start = int(query.get("$skiptoken", ["0"])[0])
                with fake._lock:
                    fake.counts["messages"] += 1
                end = start + fake.messages_page
                page: dict[str, Any] = {"value": messages[start:end]}
                if end < len(messages):
                    page["@odata.nextLink"] = f"{fake.base_url}{MESSAGES_PATH}?$skiptoken={end}"
                self._send(200, json.dumps(page))

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
                if fake._answer_get(self, path):
                    return
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
                        self._messages(fake.tenant_messages.get(tenant, fake.messages))
                        return
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
                if fake._answer_post(self, path, raw):
                    return
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


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: str | bytes,
    headers: Mapping[str, str] | None = None,
) -> None:
    """One whole answer (JSON unless ``headers`` name another Content-Type)."""
    data = body.encode() if isinstance(body, str) else body
    handler.send_response(status)
    if "Content-Type" not in (headers or {}):
        handler.send_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _tenant_in(path: str) -> str:
    """The tenant a sign-in path names (``/contoso.onmicrosoft.com/v2.0/...``)."""
    tenant = path.lstrip("/").partition("/")[0]
    return TENANT if tenant == TENANT_GUID else tenant


class _QuietServer(ThreadingHTTPServer):
    """A loopback server that drops a client's vanished connection without a traceback.

    socketserver prints one to stderr; a kept-alive connection closed by a client that
    went away (its process, or a test, ended) is not an error here, and printed while
    another test's CliRunner holds stderr it would land in that test's output.
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, ssl.SSLError, TimeoutError)):
            return
        super().handle_error(request, client_address)


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


# -- many tenants ---------------------------------------------------------------------------

MESSAGES_PATH = "/v1.0/admin/serviceAnnouncement/messages"
_GRAPH_FEEDS = {ISSUES_PATH: "issues", HEALTH_PATH: "health", MESSAGES_PATH: "messages"}
# Sign-in refusals a tenant can be set to (``Tenant.sign_in_error``), as Entra ID words them.
WITHDRAWN = 700016  # consent withdrawn / service principal deleted: 400 unauthorized_client
NO_SERVICE_PRINCIPAL = 7000229  # 401 invalid_client
UNKNOWN_TENANT = 90002  # a tenant id or domain that does not exist: 400, at discovery too
WRONG_SECRET = 7000215  # 401 invalid_client (when ``Tenant.client_secret`` is set)
MAX_PAGE_SIZE = 1000
_GUID = re.compile(r"^[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")


@dataclass(eq=False)
class Tenant:
    """One customer tenant of `FakeTenants`: its data and its knobs (change them any time)."""

    name: str
    tenant_id: str  # as configured: a GUID or a domain
    guid: str  # the directory id: tenant_id itself, or one derived from the domain
    token: str  # the access token its sign-in gets, and by which Graph knows it
    issues: list[dict[str, Any]] = field(default_factory=list)
    health: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    client_id: str = CLIENT_ID  # the app consented here: another client id gets AADSTS700016
    client_secret: str | None = None  # None: any secret (or certificate assertion) accepted
    # An AADSTS code the token endpoint answers with instead of a token (WITHDRAWN,
    # NO_SERVICE_PRINCIPAL, UNKNOWN_TENANT, WRONG_SECRET); UNKNOWN_TENANT also at discovery.
    sign_in_error: int | None = None
    graph_status: int | None = None  # every Graph request answered with it (403: no permission)
    throttled: int = 0  # the next N Graph requests answered 429 with ``retry_after``
    retry_after: str | None = "1"  # None: a 429 without Retry-After
    delay: float = 0.0  # seconds before each Graph answer
    sign_in_delay: float = 0.0  # seconds before each discovery or token answer
    # Server-side page size of issues and messages (None: everything in one answer);
    # the request's ``Prefer: odata.maxpagesize=N`` overrides it up to 1000.
    page_size: int | None = None
    # Requests by kind: openid, token, graph (every Graph request), issues, health, messages,
    # issue (one issue or post by id), and the status of each refusal ("429", "403", ...).
    counts: collections.Counter[str] = field(default_factory=collections.Counter)


class FakeTenants(FakeMicrosoft):
    """Entra ID + Graph for several tenants, on the same TLS server and webhooks as FakeMicrosoft.

    Per tenant (path ``/{tenant id or domain}/…`` and its GUID): discovery at
    ``/{tenant}/v2.0/.well-known/openid-configuration``, tokens at
    ``/{guid}/oauth2/v2.0/token`` (``token-{tenant_id}``); Graph's issues,
    healthOverviews and messages answer with the data of the tenant whose token is
    presented. A tenant id that was never added is unknown (AADSTS90002).
    FakeMicrosoft's own ``issues``/``health``/``graph_faults`` knobs do not apply here.
    """

    def __init__(self, folder: Path, names: Iterable[str] = ()) -> None:
        super().__init__(folder)
        self.tenants: dict[str, Tenant] = {}
        self._by_path: dict[str, Tenant] = {}
        self._by_token: dict[str, Tenant] = {}
        # Keep each answer's bytes until forget_answers(): for benchmarks whose data
        # does not change between requests (serialising 300 issues costs the server).
        # Tenants handed the same list share one answer.
        self.cache_answers = False
        self._answers: dict[tuple[int, str, int, int], tuple[list[dict[str, Any]], bytes]] = {}
        for name in names:
            self.add_tenant(name)

    def add_tenant(
        self,
        name: str,
        tenant_id: str | None = None,
        *,
        issues: list[dict[str, Any]] | None = None,
        health: list[dict[str, Any]] | None = None,
        messages: list[dict[str, Any]] | None = None,
    ) -> Tenant:
        """A new tenant; ``tenant_id`` defaults to ``{name}.onmicrosoft.com``."""
        tenant_id = tenant_id or f"{name}.onmicrosoft.com"
        if _GUID.match(tenant_id):
            guid = tenant_id.lower()
        else:
            guid = str(uuid.uuid5(uuid.NAMESPACE_DNS, tenant_id.lower()))
        with self._lock:
            if name in self.tenants or tenant_id.lower() in self._by_path:
                raise ValueError(f"tenant {name!r} or {tenant_id!r} added twice")
            tenant = Tenant(
                name=name,
                tenant_id=tenant_id,
                guid=guid,
                token=f"token-{tenant_id}",
                issues=issues if issues is not None else [],
                health=health if health is not None else [],
                messages=messages if messages is not None else [],
            )
            self.tenants[name] = tenant
            self._by_path[tenant_id.lower()] = self._by_path[guid] = tenant
            self._by_token[tenant.token] = tenant
        return tenant

    def forget_answers(self) -> None:
        """Drop the answers kept by ``cache_answers`` (call it after changing the data)."""
        with self._lock:
            self._answers.clear()

    def config_text(
        self,
        state_path: Path,
        notify: str = "",
        extra: str = "",
        *,
        tenants: Iterable[str | tuple[str, str]] | None = None,
        tenant_extra: Mapping[str, str] | None = None,
        defaults_extra: str = "",
    ) -> str:
        """A config with ``[tenant]`` defaults and one ``[[tenants]]`` block per tenant.

        ``tenants``: names of added tenants, or (name, tenant_id) pairs for any other
        (such as one this server does not know); default every added tenant, in order.
        ``tenant_extra``: TOML lines for a tenant's block, by name (its overrides).
        ``defaults_extra``: more lines for ``[tenant]``; ``extra``: whole tables
        (``[poll]\\nconcurrency = 8``) after ``[state]``; ``notify``: the [[notify]] blocks.
        """
        chosen = list(self.tenants) if tenants is None else list(tenants)
        blocks = []
        for item in chosen:
            name, tenant_id = (
                item if isinstance(item, tuple) else (item, self.tenants[item].tenant_id)
            )
            more = (tenant_extra or {}).get(name, "")
            blocks.append(f'[[tenants]]\nname = "{name}"\ntenant_id = "{tenant_id}"\n{more}\n')
        return (
            f'[tenant]\nclient_id = "{CLIENT_ID}"\n'
            'client_secret = "${M365WATCH_CLIENT_SECRET}"\n'
            f'authority = "{self.base_url}"\ngraph_endpoint = "{self.base_url}"\n'
            f"{defaults_extra}\n\n"
            f'[state]\npath = "{state_path}"\n\n{extra}\n\n' + "\n".join(blocks) + f"\n{notify}"
        )

    def single_config_text(
        self, name: str, state_path: Path, notify: str = "", extra: str = ""
    ) -> str:
        """Today's single-tenant config (``[tenant]`` with ``tenant_id``) for one added tenant."""
        tenant_id = self.tenants[name].tenant_id
        return (
            super()
            .config_text(state_path, notify, extra)
            .replace(f'tenant_id = "{TENANT}"', f'tenant_id = "{tenant_id}"', 1)
        )

    # -- routes -------------------------------------------------------------------------

    def _count(self, tenant: Tenant | None, *kinds: str) -> None:
        with self._lock:
            for kind in kinds:
                if tenant is not None:
                    tenant.counts[kind] += 1
            # FakeMicrosoft's totals, as the benchmarks read them.
            if kinds and kinds[0] in ("openid", "token", "graph"):
                self.counts[kinds[0]] += 1

    def _answer_get(self, handler: BaseHTTPRequestHandler, path: str) -> bool:
        if path.endswith("/v2.0/.well-known/openid-configuration"):
            self._discovery(handler, path.split("/")[1])
            return True
        if path.startswith(_SERVICE_ANNOUNCEMENT) and not path.endswith("/incidentReport"):
            self._graph(handler, path)
            return True
        return False

    def _answer_post(self, handler: BaseHTTPRequestHandler, path: str, raw: str) -> bool:
        if not path.endswith("/oauth2/v2.0/token"):
            return False
        self._sign_in(handler, path.split("/")[1], parse_qs(raw))
        return True

    def _discovery(self, handler: BaseHTTPRequestHandler, segment: str) -> None:
        tenant = self._by_path.get(segment.lower())
        self._count(tenant, "openid")
        if tenant is not None and self._stopping.wait(tenant.sign_in_delay):
            return
        if tenant is None or tenant.sign_in_error == UNKNOWN_TENANT:
            body = _entra_error(UNKNOWN_TENANT, "invalid_tenant", _unknown_tenant(segment))
            send(handler, 400, json.dumps(body))
            return
        send(handler, 200, json.dumps(_openid(f"{self.base_url}/{tenant.guid}")))

    def _sign_in(
        self, handler: BaseHTTPRequestHandler, segment: str, form: dict[str, list[str]]
    ) -> None:
        tenant = self._by_path.get(segment.lower())
        self._count(tenant, "token")
        if tenant is not None and self._stopping.wait(tenant.sign_in_delay):
            return
        client_id = (form.get("client_id") or [""])[0]
        refusal = _refusal(
            tenant, segment, client_id, next(iter(form.get("client_secret", [])), None)
        )
        if refusal is not None:
            status, body = refusal
            self._count(tenant, str(status))
            send(handler, status, json.dumps(body))
            return
        assert tenant is not None
        answer = {"token_type": "Bearer", "expires_in": 3599, "access_token": tenant.token}
        send(handler, 200, json.dumps(answer))

    def _graph(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        bearer = handler.headers.get("Authorization") or ""
        tenant = self._by_token.get(bearer.removeprefix("Bearer ").strip())
        feed = _GRAPH_FEEDS.get(path, "issue")
        self._count(tenant, "graph", feed)
        if tenant is None:
            self._count(None, "401")
            send(
                handler, 401, _graph_error("InvalidAuthenticationToken", "Access token is invalid.")
            )
            return
        if self._stopping.wait(tenant.delay):
            return
        with self._lock:
            throttled = tenant.throttled > 0
            tenant.throttled -= 1 if throttled else 0
        if throttled:
            self._count(tenant, "429")
            headers = {"Retry-After": tenant.retry_after} if tenant.retry_after is not None else {}
            send(handler, 429, _graph_error("TooManyRequests", "Too many requests."), headers)
            return
        if tenant.graph_status is not None:
            self._count(tenant, str(tenant.graph_status))
            send(
                handler,
                tenant.graph_status,
                _graph_error(
                    *_GRAPH_REFUSALS.get(
                        tenant.graph_status, ("UnknownError", "An error occurred.")
                    )
                ),
            )
            return
        if feed == "issue":
            self._one(handler, tenant, path)
            return
        items: list[dict[str, Any]] = getattr(tenant, feed)
        query = parse_qs(urlsplit(handler.path).query)
        start = int((query.get("$skiptoken") or ["0"])[0])
        size = _page_size(tenant.page_size, handler.headers.get("Prefer") or "", feed)
        # The list itself is kept with its answer, so its id is not reused meanwhile.
        key = (id(items), path, start, size)
        with self._lock:
            kept = self._answers.get(key) if self.cache_answers else None
        if kept is None:
            data = json.dumps(_page(items, start, size, self.base_url + path)).encode()
            if self.cache_answers:
                with self._lock:
                    self._answers[key] = (items, data)
        else:
            data = kept[1]
        send(handler, 200, data)

    def _one(self, handler: BaseHTTPRequestHandler, tenant: Tenant, path: str) -> None:
        """``/issues/{id}`` or ``/messages/{id}`` of this tenant, or 404."""
        parts = path[len(_SERVICE_ANNOUNCEMENT) :].strip("/").split("/")
        items = {"issues": tenant.issues, "messages": tenant.messages}.get(parts[0])
        found = [i for i in items or [] if len(parts) == 2 and i.get("id") == parts[1]]
        if found:
            send(handler, 200, json.dumps(found[0]))
            return
        said = f"{parts[0][:-1].capitalize()} with id {parts[-1]} doesn't exist."
        send(handler, 404, _graph_error("UnknownError", said))


_SERVICE_ANNOUNCEMENT = "/v1.0/admin/serviceAnnouncement/"
_GRAPH_REFUSALS = {
    401: ("InvalidAuthenticationToken", "Access token validation failure. Invalid audience."),
    403: (
        "Forbidden",
        "Missing role permissions on the request. API requires one of "
        "'ServiceHealth.Read.All'. Roles on the request ''.",
    ),
    404: ("UnknownError", "Resource not found."),
    500: ("UnknownError", "An internal server error occurred."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
}
_TRACE = (
    "\r\nTrace ID: 0d1a7a0e-5d3b-4c8e-9f0a-6b1c2d3e4f50"
    "\r\nCorrelation ID: 9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0\r\nTimestamp: 2026-11-28 15:32:00Z"
)


def _entra_error(code: int, error: str, sentence: str) -> dict[str, Any]:
    """An Entra ID error answer, shaped as login.microsoftonline.com sends it."""
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {sentence}{_TRACE}",
        "error_codes": [code],
        "timestamp": "2026-11-28 15:32:00Z",
        "trace_id": "0d1a7a0e-5d3b-4c8e-9f0a-6b1c2d3e4f50",
        "correlation_id": "9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0",
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


def _unknown_tenant(segment: str) -> str:
    return (
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID "
        "and are signing into the correct cloud."
    )


def _refusal(
    tenant: Tenant | None, segment: str, client_id: str, secret: str | None
) -> tuple[int, dict[str, Any]] | None:
    """The token endpoint's (status, error body) for this request, or None: a token."""
    if tenant is None or tenant.sign_in_error == UNKNOWN_TENANT:
        return 400, _entra_error(UNKNOWN_TENANT, "invalid_request", _unknown_tenant(segment))
    code = tenant.sign_in_error
    if code is None and client_id != tenant.client_id:
        code = WITHDRAWN
    if (
        code is None
        and tenant.client_secret is not None
        and secret not in (None, tenant.client_secret)
    ):
        code = WRONG_SECRET
    if code is None:
        return None
    if code == WITHDRAWN:
        sentence = (
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant.tenant_id}'. This can happen if the application has not been installed "
            "by the administrator of the tenant or consented to by any user in the tenant. "
            "You may have sent your authentication request to the wrong tenant."
        )
        return 400, _entra_error(code, "unauthorized_client", sentence)
    if code == NO_SERVICE_PRINCIPAL:
        sentence = (
            f"The client application {client_id} is missing service principal in the tenant "
            f"{tenant.guid}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119"
        )
        return 401, _entra_error(code, "invalid_client", sentence)
    if code == WRONG_SECRET:
        sentence = (
            "Invalid client secret provided. Ensure the secret being sent in the request is "
            f"the client secret value, not the client secret ID, for a secret added to app "
            f"'{client_id}'."
        )
        return 401, _entra_error(code, "invalid_client", sentence)
    return 400, _entra_error(code, "invalid_request", f"Sign-in refused ({code}).")


def _graph_error(code: str, message: str) -> str:
    inner = {"date": "2026-11-28T15:32:00", "request-id": "5b1c2d3e-0000-4000-8000-000000000001"}
    return json.dumps({"error": {"code": code, "message": message, "innerError": inner}})


def _page_size(default: int | None, prefer: str, feed: str) -> int:
    """Items per page: 0 for everything at once (``default`` None)."""
    if default is None:
        return 0
    match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
    if match and feed in ("issues", "messages"):
        return max(1, min(int(match.group(1)), MAX_PAGE_SIZE))
    return max(1, default)


def _page(items: list[dict[str, Any]], start: int, size: int, url: str) -> dict[str, Any]:
    """One page of ``items`` from ``start``, with ``@odata.nextLink`` when more follow."""
    if size == 0:
        return {"value": items}
    body: dict[str, Any] = {"value": items[start : start + size]}
    if start + size < len(items):
        body["@odata.nextLink"] = f"{url}?$skiptoken={start + size}"
    return body
