"""Test certificates made with the openssl command: a CA, server and client certificates, and a stranger CA."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from tests.observability.support import require_tool

PASSWORD = "scrape-secret"


@dataclass(frozen=True)
class Certs:
    folder: Path
    ca: Path
    server_cert: Path
    server_key: Path
    other_server_cert: Path  # same CA, another name: what a rotation puts in place
    other_server_key: Path
    client_cert: Path  # SAN DNS:scraper.example, signed by the CA
    client_key: Path
    stranger_cert: Path  # signed by a CA the server does not trust
    stranger_key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run([require_tool("openssl"), *map(str, args)], check=True, capture_output=True)


def _key_and_request(folder: Path, name: str, subject: str) -> tuple[Path, Path]:
    key, request = folder / f"{name}.key", folder / f"{name}.csr"
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", request,
        "-subj", subject,
    )  # fmt: skip
    return key, request


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
        "-out", cert, "-days", "2", "-subj", f"/CN={name}",
    )  # fmt: skip
    return cert, key


def _signed(folder: Path, name: str, ca: tuple[Path, Path], san: str) -> tuple[Path, Path]:
    key, request = _key_and_request(folder, name, f"/CN={name}")
    extensions = folder / f"{name}.ext"
    extensions.write_text(f"subjectAltName={san}\n", encoding="utf-8")
    cert = folder / f"{name}.crt"
    _openssl(
        "x509", "-req", "-in", request, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", cert,
        "-days", "2", "-extfile", extensions,
    )  # fmt: skip
    return cert, key


def make_certs(folder: Path) -> Certs:
    ca, stranger_ca = _ca(folder, "test-ca"), _ca(folder, "stranger-ca")
    server = _signed(folder, "server", ca, "IP:127.0.0.1,DNS:localhost")
    other = _signed(folder, "rotated", ca, "IP:127.0.0.1,DNS:localhost")
    client = _signed(folder, "client", ca, "DNS:scraper.example")
    stranger = _signed(folder, "stranger", stranger_ca, "DNS:scraper.example")
    return Certs(folder, ca[0], *server, *other, *client, *stranger)


def password_hash(password: str = PASSWORD) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
