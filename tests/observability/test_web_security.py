"""The endpoints behind a web configuration file: real TLS clients, basic auth, client certificates, rotation."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from service import basicauth
from service.web import HttpServer, MetricsPage, build_app, web_guard
from tests.observability.certs import PASSWORD, Certs, make_certs, password_hash


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def read_config(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return config


def tls_section(certs: Certs, **extra: object) -> dict[str, object]:
    return {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key), **extra}


async def _ready() -> list[str]:
    return []


class Running:
    def __init__(self, server: HttpServer) -> None:
        self.server = server

    @property
    def url(self) -> str:
        return f"{self.server.scheme}://127.0.0.1:{self.server.bound_port}"


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    servers: list[HttpServer] = []

    async def start(config: Path, page: MetricsPage | None = None) -> Running:
        guard = web_guard(config)
        app = build_app(CollectorRegistry(), _ready, guard=guard, page=page)
        server = HttpServer(app, "127.0.0.1", 0, guard)
        await server.start()
        servers.append(server)
        return Running(server)

    yield start
    for server in servers:
        await server.stop()


def client(certs: Certs, cert: tuple[Path, Path] | None = None, **kwargs: Any) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=str(certs.ca))
    if cert is not None:
        context.load_cert_chain(*map(str, cert))
    return httpx.AsyncClient(verify=context, timeout=5, **kwargs)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def auth_config(tmp_path: Path, certs: Certs) -> Path:
    users = {"prometheus": password_hash()}
    return write_config(
        tmp_path / "web.yml", {"tls_server_config": tls_section(certs), "basic_auth_users": users}
    )


async def test_a_tls_client_with_the_password_is_served_and_others_get_401(
    serve: Any, certs: Certs, auth_config: Path
) -> None:
    running = await serve(auth_config)
    assert running.url.startswith("https://")
    async with client(certs) as http:
        for path in ("/metrics", "/healthz", "/readyz"):
            assert (
                await http.get(running.url + path, headers=basic("prometheus", PASSWORD))
            ).status_code == 200
        refused = [
            await http.get(running.url + "/metrics"),
            await http.get(running.url + "/metrics", headers=basic("prometheus", "wrong")),
            await http.get(running.url + "/healthz", headers=basic("nobody", PASSWORD)),
            await http.get(running.url + "/metrics", headers={"Authorization": "Bearer " + PASSWORD}),
        ]
    assert [r.status_code for r in refused] == [401] * 4
    assert all(r.headers["WWW-Authenticate"] == "Basic" for r in refused)
    assert b"flockwatch" not in refused[0].content


async def test_plain_http_and_unknown_certificates_get_no_page(
    serve: Any, certs: Certs, auth_config: Path
) -> None:
    running = await serve(auth_config)
    async with httpx.AsyncClient(timeout=5) as http:
        with pytest.raises(httpx.HTTPError):
            await http.get(f"http://127.0.0.1:{running.server.bound_port}/metrics")
        with pytest.raises(httpx.ConnectError):  # the system's CAs do not know the test CA
            await http.get(running.url + "/metrics")


async def test_a_big_page_over_tls_is_sent_through_tls(
    serve: Any, certs: Certs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Big pages bypass the loop on plain connections (service.web._sent_aside); never around TLS.
    monkeypatch.setattr("service.web.SEND_ASIDE", 0)
    body = [f'flockwatch_up{{part="{i}"}} 1\n'.encode() for i in range(100)]
    config = write_config(tmp_path / "web.yml", {"tls_server_config": tls_section(certs)})
    running = await serve(config, MetricsPage(lambda: body))
    async with client(certs) as http:
        page = await http.get(running.url + "/metrics", headers={"Accept-Encoding": "identity"})
        again = await http.get(running.url + "/healthz")
    assert page.status_code == 200 and page.content == b"".join(body)
    assert again.text == "ok\n"


@pytest.mark.parametrize("mode", ["RequireAndVerifyClientCert", "VerifyClientCertIfGiven"])
async def test_client_certificates(serve: Any, certs: Certs, tmp_path: Path, mode: str) -> None:
    tls = tls_section(certs, client_auth_type=mode, client_ca_file=str(certs.ca))
    running = await serve(write_config(tmp_path / "web.yml", {"tls_server_config": tls}))
    async with client(certs, (certs.client_cert, certs.client_key)) as http:
        assert (await http.get(running.url + "/metrics")).status_code == 200
    with pytest.raises(httpx.HTTPError):
        async with client(certs, (certs.stranger_cert, certs.stranger_key)) as http:
            await http.get(running.url + "/metrics")
    async with client(certs) as http:
        if mode == "VerifyClientCertIfGiven":
            assert (await http.get(running.url + "/metrics")).status_code == 200
        else:
            with pytest.raises(httpx.HTTPError):
                await http.get(running.url + "/metrics")


async def test_client_allowed_sans(serve: Any, certs: Certs, tmp_path: Path) -> None:
    def config(sans: list[str]) -> Path:
        tls = tls_section(
            certs,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=str(certs.ca),
            client_allowed_sans=sans,
        )
        return write_config(tmp_path / f"web-{len(sans)}.yml", {"tls_server_config": tls})

    allowed, other = await serve(config(["scraper.example"])), await serve(config(["other.example", "x"]))
    async with client(certs, (certs.client_cert, certs.client_key)) as http:
        assert (await http.get(allowed.url + "/metrics")).status_code == 200
        assert (await http.get(other.url + "/metrics")).status_code == 403


def served_certificate(port: int, certs: Certs) -> str:
    context = ssl.create_default_context(cafile=str(certs.ca))
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        peer = tls.getpeercert()
    return dict(part[0] for part in peer["subject"])["commonName"]


async def test_certificates_rotate_by_replacing_the_files(serve: Any, certs: Certs, tmp_path: Path) -> None:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(certs.server_cert.read_bytes())
    key.write_bytes(certs.server_key.read_bytes())
    running = await serve(
        write_config(
            tmp_path / "web.yml", {"tls_server_config": {"cert_file": "tls.crt", "key_file": "tls.key"}}
        )
    )
    port = running.server.bound_port
    assert await asyncio.to_thread(served_certificate, port, certs) == "server"
    cert.write_bytes(certs.other_server_cert.read_bytes())
    key.write_bytes(certs.other_server_key.read_bytes())
    assert await asyncio.to_thread(served_certificate, port, certs) == "rotated"


async def test_users_change_without_a_restart_and_a_broken_file_fails_closed(
    serve: Any, certs: Certs, auth_config: Path
) -> None:
    running = await serve(auth_config)
    async with client(certs) as http:
        assert (
            await http.get(running.url + "/metrics", headers=basic("prometheus", PASSWORD))
        ).status_code == 200
        config = read_config(auth_config)
        config["basic_auth_users"] = {"prometheus": password_hash("new-secret")}
        write_config(auth_config, config)
        assert (
            await http.get(running.url + "/metrics", headers=basic("prometheus", PASSWORD))
        ).status_code == 401
        assert (
            await http.get(running.url + "/metrics", headers=basic("prometheus", "new-secret"))
        ).status_code == 200
        write_config(auth_config, {**config, "unknown_key": 1})
        assert (
            await http.get(running.url + "/metrics", headers=basic("prometheus", "new-secret"))
        ).status_code == 500
        write_config(auth_config, config)
        assert (
            await http.get(running.url + "/metrics", headers=basic("prometheus", "new-secret"))
        ).status_code == 200


async def test_bcrypt_runs_once_per_credentials(
    serve: Any, certs: Certs, auth_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[bytes] = []
    real = basicauth._bcrypt_matches

    def counted(password: bytes, hashed: bytes) -> bool:
        checks.append(password)
        return real(password, hashed)

    monkeypatch.setattr(basicauth, "_bcrypt_matches", counted)
    running = await serve(auth_config)
    async with client(certs) as http:
        right = await asyncio.gather(
            *(http.get(running.url + "/metrics", headers=basic("prometheus", PASSWORD)) for _ in range(20))
        )
        wrong = [
            await http.get(running.url + "/metrics", headers=basic("prometheus", "guess")) for _ in range(5)
        ]
    assert {r.status_code for r in right} == {200} and {r.status_code for r in wrong} == {401}
    assert sorted(checks) == sorted([PASSWORD.encode(), b"guess"])


async def test_headers_and_rate_limit_from_the_file(serve: Any, tmp_path: Path) -> None:
    config = {
        "http_server_config": {"headers": {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"}},
        "rate_limit": {"interval": "1h", "burst": 2},
    }
    running = await serve(write_config(tmp_path / "web.yml", config))
    assert running.url.startswith("http://")
    async with httpx.AsyncClient(timeout=5) as http:
        answers = [await http.get(running.url + path) for path in ("/metrics", "/healthz", "/healthz")]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert (  # the streamed /metrics page, a plain answer and a refusal all carry them
        answers[0].headers["X-Frame-Options"] == "deny"
        and answers[1].headers["X-Frame-Options"] == "deny"
        and answers[2].headers["X-Content-Type-Options"] == "nosniff"
    )
