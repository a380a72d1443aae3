"""The web configuration file is read the way the exporter-toolkit documents it, and a bad one starts nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import ConfigError, load
from service.webconfig import GO_CIPHERS, WebConfigError, load_web_config
from tests.observability.certs import Certs, make_certs, password_hash
from tests.observability.support import ROOT, require_tool, run_tool


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def written(tmp_path: Path, config: Any, name: str = "web.yml") -> Path:
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config), encoding="utf-8")
    return path


def problems(path: Path) -> str:
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    return "; ".join(caught.value.problems)


def test_an_empty_file_means_plain_http_without_auth(tmp_path: Path) -> None:
    config = load_web_config(written(tmp_path, ""))
    assert config.tls is None and not config.users and not config.headers


def test_relative_certificate_paths_are_taken_from_the_files_folder(tmp_path: Path, certs: Certs) -> None:
    folder = certs.folder
    tls = {"cert_file": certs.server_cert.name, "key_file": certs.server_key.name, "min_version": "TLS13"}
    config = load_web_config(written(folder, {"tls_server_config": tls}, "relative.yml"))
    assert config.tls is not None and config.file.tls_server_config.cert_file == certs.server_cert
    assert config.tls.minimum_version.name == "TLSv1_3"


BAD_FILES = [
    ({"tls_server_confg": {}}, "tls_server_confg: unknown key"),
    (
        {"tls_server_config": {"cert_file": "x", "key_file": "y", "client_auth": "x"}},
        "tls_server_config.client_auth: unknown key",
    ),
    ({"basic_auth_users": {"alice": "plain-password"}}, "not a bcrypt hash"),
    ({"tls_server_config": {"cert_file": "missing.crt", "key_file": "missing.key"}}, "cannot read"),
    ({"tls_server_config": {"key_file": "server.key"}}, "missing one of cert or cert_file"),
    ({"tls_server_config": {"client_auth_type": "RequireAnyClientCert"}}, "nobody verified"),
    ({"tls_server_config": {"client_auth_type": "Sometimes"}}, "must be one of NoClientCert"),
    ({"tls_server_config": {"min_version": "TLS14"}}, "unknown TLS version"),
    ({"tls_server_config": {"cipher_suites": ["RC4"]}}, "unknown cipher 'RC4'"),
    ({"tls_server_config": {"curve_preferences": ["X25519", "CurveP256"]}}, "list one"),
    ({"http_server_config": {"headers": {"Server": "x"}}}, "HTTP header 'Server' can not be configured"),
    ({"http_server_config": {"headers": {"X-Frame-Options": "allow"}}}, "X-Frame-Options must be one of"),
    ({"rate_limit": {"interval": "1s"}}, "rate_limit.burst: must be at least 1"),
    ("tls_server_config: [unclosed", "not valid YAML at line 1"),
    (["a list"], "the top level must be a mapping"),
]


@pytest.mark.parametrize(("content", "expected"), BAD_FILES, ids=[expected for _, expected in BAD_FILES])
def test_a_bad_file_is_refused_naming_the_problem(tmp_path: Path, content: Any, expected: str) -> None:
    assert expected in problems(written(tmp_path, content))


def test_client_auth_needs_a_ca_and_a_ca_needs_client_auth(tmp_path: Path, certs: Certs) -> None:
    base = {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)}
    no_ca = {"tls_server_config": {**base, "client_auth_type": "RequireAndVerifyClientCert"}}
    assert "needs client_ca_file" in problems(written(tmp_path, no_ca))
    no_auth = {"tls_server_config": {**base, "client_ca_file": str(certs.ca)}}
    assert "without a client_auth_type" in problems(written(tmp_path, no_auth))
    sans = {
        "tls_server_config": {
            **base,
            "client_ca_file": str(certs.ca),
            "client_auth_type": "VerifyClientCertIfGiven",
            "client_allowed_sans": ["x"],
        }
    }
    assert "client_allowed_sans requires" in problems(written(tmp_path, sans))


def test_a_mismatched_key_is_refused(tmp_path: Path, certs: Certs) -> None:
    tls = {"cert_file": str(certs.server_cert), "key_file": str(certs.other_server_key)}
    assert "do not load as a pair" in problems(written(tmp_path, {"tls_server_config": tls}))


def test_inline_certificate_and_key_load(tmp_path: Path, certs: Certs) -> None:
    tls = {
        "cert": certs.server_cert.read_text(),
        "key": certs.server_key.read_text(),
        "client_ca": certs.ca.read_text(),
        "client_auth_type": "RequireAndVerifyClientCert",
    }
    config = load_web_config(written(tmp_path, {"tls_server_config": tls}))
    assert config.tls is not None and config.tls.verify_mode.name == "CERT_REQUIRED"


def test_problems_never_echo_a_secret(tmp_path: Path) -> None:
    hashed = password_hash()
    text = f"basic_auth_users:\n  alice: {hashed}\n  bob: [{hashed}\n"
    assert hashed not in problems(written(tmp_path, text))


def test_go_cipher_names_match_openssls_standard_names() -> None:
    openssl = require_tool("openssl")
    listing = run_tool(openssl, "ciphers", "-stdname", "ALL").stdout
    names = {parts[0]: parts[2] for parts in map(str.split, listing.splitlines()) if parts[1:2] == ["-"]}
    assert {go: names.get(go) for go in GO_CIPHERS} == GO_CIPHERS


def test_the_config_key_is_checked_with_the_rest_of_the_configuration(tmp_path: Path) -> None:
    bad = written(tmp_path, {"basic_auth_users": {"alice": "x"}})
    config = written(tmp_path, {"http": {"web_config_file": str(bad)}}, "flockwatch.yml")
    with pytest.raises(ConfigError) as caught:
        load(config, environ={})
    assert caught.value.problems[0].startswith(f"http.web_config_file: {bad}: basic_auth_users: ")


@pytest.mark.parametrize("command", ["run", "demo"])
def test_a_bad_web_config_flag_exits_2_before_anything_starts(tmp_path: Path, command: str) -> None:
    bad = written(
        tmp_path, {"tls_server_config": {"cert_file": "nope.crt", "key_file": "nope.key"}, "extra": 1}
    )
    database = tmp_path / "never.db"
    args = [sys.executable, "-m", "service", command, "--web.config.file", str(bad)]
    args += ["--db", f"sqlite:///{database}"] if command == "demo" else []
    env = {"FLOCKWATCH_DATABASE__URL": f"sqlite:///{database}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env, check=False)
    assert result.returncode == 2, result.stderr
    assert f"web configuration {bad} is not valid" in result.stderr and "extra: unknown key" in result.stderr
    assert "Traceback" not in result.stderr and not database.exists()
