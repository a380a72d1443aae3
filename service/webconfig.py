"""The web configuration file of Prometheus exporters (the exporter-toolkit format): TLS, basic auth, headers.

``flockwatch run --web.config.file FILE`` (or ``http.web_config_file``) reads the keys prometheus/exporter-toolkit
documents in docs/web-configuration.md, with its defaults: ``tls_server_config`` (cert_file/key_file or inline
cert/key, client_auth_type, client_ca_file or client_ca, client_allowed_sans, min_version TLS12, max_version TLS13,
cipher_suites, prefer_server_cipher_suites, curve_preferences), ``http_server_config`` (http2, headers),
``basic_auth_users`` (bcrypt hashes) and ``rate_limit`` (interval, burst). An unknown key is an error naming it.
Relative paths are taken from the file's folder, as the toolkit does.

Where Python's ``ssl`` cannot do what Go's ``crypto/tls`` does, the file is refused with the reason rather than
served differently: client certificates accepted without verification (``RequestClientCert``,
``RequireAnyClientCert``) and more than one curve in ``curve_preferences``.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, ValidationError, field_validator

from service.durations import parse_duration

# Go's names (crypto/tls CipherSuites, TLS 1.0-1.2) and OpenSSL's for the same suites.
GO_CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
}
# TLS 1.3 suites are accepted and, as in Go, not configurable.
TLS13_CIPHERS = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
# The headers the toolkit lets a file set, with their allowed values (None: any).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2x$", "$2y$")
_BCRYPT_LENGTH = 60


class WebConfigError(Exception):
    """The web configuration file cannot be used; ``problems`` name each key that is wrong."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(problems))
        self.path = path
        self.problems = problems


def _defaults_for_null(value: object) -> object:
    return {} if value is None else value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsServerConfig(_Strict):
    cert: str | None = None
    key: SecretStr | None = None
    client_ca: str | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_allowed_sans: tuple[str, ...] | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()

    @field_validator("client_auth_type")
    @classmethod
    def _check_client_auth(cls, value: str) -> str:
        if value in UNVERIFIED_CLIENT_AUTH:
            raise ValueError(
                f"{value} accepts client certificates nobody verified, which flockwatch does not offer; "
                "use RequireAndVerifyClientCert with client_ca_file"
            )
        if value not in CLIENT_AUTH:
            raise ValueError(f"must be one of {', '.join(CLIENT_AUTH)}")
        return value

    @field_validator("min_version", "max_version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        if value not in TLS_VERSIONS:
            raise ValueError(f"unknown TLS version {value!r}: one of {', '.join(TLS_VERSIONS)}")
        return value

    @field_validator("cipher_suites")
    @classmethod
    def _check_ciphers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in GO_CIPHERS and name not in TLS13_CIPHERS]
        if unknown:
            raise ValueError(
                f"unknown cipher {unknown[0]!r}: use Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            )
        return value

    @field_validator("curve_preferences")
    @classmethod
    def _check_curves(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in CURVES]
        if unknown:
            raise ValueError(f"unknown curve {unknown[0]!r}: one of {', '.join(CURVES)}")
        if len(value) > 1:
            raise ValueError("Python's ssl module restricts the handshake to one curve: list one")
        return value

    def enabled(self) -> bool:
        """TLS is on when any of these is set (the toolkit's rule); otherwise the server speaks plain HTTP."""
        return any(
            (self.cert, self.key, self.client_ca, self.cert_file, self.key_file, self.client_ca_file)
        ) or ("client_auth_type" in self.model_fields_set)

    def files(self) -> tuple[Path, ...]:
        return tuple(path for path in (self.cert_file, self.key_file, self.client_ca_file) if path)


class HttpServerConfig(_Strict):
    http2: bool = True  # accepted for compatibility: flockwatch serves HTTP/1.1 only
    headers: dict[str, str] = {}

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if name not in HEADERS:
                raise ValueError(f"HTTP header {name!r} can not be configured: one of {', '.join(HEADERS)}")
            allowed = HEADERS[name]
            if allowed is not None and text not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {text!r}")
        return value


def _interval(value: object) -> float:
    if value in (0, "0", None):
        return 0.0
    if not isinstance(value, str):
        raise ValueError("an interval is text like 1s, 500ms or 1m")
    return parse_duration(value).total_seconds()


class RateLimitConfig(_Strict):
    interval: Annotated[float, BeforeValidator(_interval)] = 0.0
    burst: int = 0


class WebConfigFile(_Strict):
    tls_server_config: Annotated[TlsServerConfig, BeforeValidator(_defaults_for_null)] = TlsServerConfig()
    http_server_config: Annotated[HttpServerConfig, BeforeValidator(_defaults_for_null)] = HttpServerConfig()
    basic_auth_users: Annotated[dict[str, SecretStr], BeforeValidator(_defaults_for_null)] = {}
    rate_limit: Annotated[RateLimitConfig, BeforeValidator(_defaults_for_null)] = RateLimitConfig()

    @field_validator("basic_auth_users")
    @classmethod
    def _check_hashes(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for user, hashed in value.items():
            if not is_bcrypt_hash(hashed.get_secret_value()):
                raise ValueError(
                    f"the password of {user!r} is not a bcrypt hash ($2y$10$... , 60 characters)"
                )
        return value


def is_bcrypt_hash(text: str) -> bool:
    cost = text[4:6]
    return (
        len(text) == _BCRYPT_LENGTH
        and text.startswith(_BCRYPT_PREFIXES)
        and cost.isdigit()
        and 4 <= int(cost) <= 31
        and text[6] == "$"
    )


@dataclass(frozen=True)
class WebConfig:
    """A checked web configuration: the file's settings and, when it turns TLS on, the server's TLS context."""

    path: Path
    file: WebConfigFile
    tls: ssl.SSLContext | None

    @property
    def users(self) -> Mapping[str, SecretStr]:
        return self.file.basic_auth_users

    @property
    def headers(self) -> Mapping[str, str]:
        return self.file.http_server_config.headers

    @property
    def allowed_sans(self) -> tuple[str, ...] | None:
        return self.file.tls_server_config.client_allowed_sans

    def watched_files(self) -> tuple[Path, ...]:
        """The files whose change takes effect without a restart: this one and the certificates it names."""
        return (self.path, *self.file.tls_server_config.files())

    def restart_settings(self) -> tuple[object, ...]:
        """What the listener fixed when it started: a change of these takes effect at the next start."""
        tls = self.file.tls_server_config
        fixed = tls.model_dump(
            exclude={"cert", "key", "client_ca", "cert_file", "key_file", "client_ca_file"}
        )
        fixed["client_allowed_sans"] = None  # checked per request
        return (
            tls.enabled(),
            sorted(fixed.items()),
            self.file.http_server_config.http2,
            self.file.rate_limit,
        )


def load_web_config(path: Path | str) -> WebConfig:
    """Read and check the file, the certificates and keys it names included; raises ``WebConfigError``."""
    path = Path(path)
    file = _parse(path, _read(path))
    tls = file.tls_server_config
    if not tls.enabled():
        return WebConfig(path, file, None)
    tls = _relative_to(tls, path.parent)
    file = file.model_copy(update={"tls_server_config": tls})
    try:
        return WebConfig(path, file, tls_context(tls))
    except (ValueError, OSError, ssl.SSLError) as exc:
        raise WebConfigError(path, [str(exc)]) from None


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError(
            path, [f"cannot read the file: {getattr(exc, 'strerror', None) or exc}"]
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise WebConfigError(path, [f"not valid YAML{line}"]) from None  # the text may hold a key or hash
    return {} if data is None else data


def _parse(path: Path, data: Any) -> WebConfigFile:
    if not isinstance(data, dict):
        raise WebConfigError(
            path, ["the top level must be a mapping (tls_server_config, basic_auth_users, ...)"]
        )
    try:
        file = WebConfigFile.model_validate(data)
    except ValidationError as exc:
        raise WebConfigError(path, [_describe(error) for error in exc.errors()]) from None
    limit = file.rate_limit
    if limit.interval > 0 and limit.burst < 1:
        raise WebConfigError(path, ["rate_limit.burst: must be at least 1 when rate_limit.interval is set"])
    return file


def _describe(error: Mapping[str, Any]) -> str:
    loc = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    message = "unknown key" if error["type"] == "extra_forbidden" else str(error["msg"])
    return f"{loc or '(top level)'}: {message.removeprefix('Value error, ')}"


def _relative_to(tls: TlsServerConfig, folder: Path) -> TlsServerConfig:
    update = {
        name: folder / path
        for name in ("cert_file", "key_file", "client_ca_file")
        if (path := getattr(tls, name)) is not None and not path.is_absolute()
    }
    return tls.model_copy(update=update)


def tls_context(tls: TlsServerConfig) -> ssl.SSLContext:
    """The server's TLS context for these settings; raises ``ValueError`` (naming the key) or ``OSError``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    ciphers = [GO_CIPHERS[name] for name in tls.cipher_suites if name in GO_CIPHERS]
    if ciphers:
        context.set_ciphers(":".join(ciphers))
    if not tls.prefer_server_cipher_suites:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.curve_preferences:
        context.set_ecdh_curve(CURVES[tls.curve_preferences[0]])
    _load_certificate(context, tls)
    _load_client_ca(context, tls)
    return context


def _load_certificate(context: ssl.SSLContext, tls: TlsServerConfig) -> None:
    if not (tls.cert or tls.cert_file):
        raise ValueError("tls_server_config: missing one of cert or cert_file")
    if not (tls.key or tls.key_file):
        raise ValueError("tls_server_config: missing one of key or key_file")
    with tempfile.TemporaryDirectory(prefix="flockwatch-tls-") as private:
        # ssl loads certificates from files only: inline ones go through a folder only we can read.
        cert = tls.cert_file or _write(Path(private, "cert.pem"), tls.cert or "")
        key = tls.key_file or _write(Path(private, "key.pem"), tls.key.get_secret_value() if tls.key else "")
        try:
            context.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            raise ValueError(
                f"tls_server_config: the certificate and key do not load as a pair ({exc.reason})"
            ) from None
        except OSError as exc:
            raise ValueError(f"tls_server_config: cannot read {exc.filename}: {exc.strerror}") from None


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _load_client_ca(context: ssl.SSLContext, tls: TlsServerConfig) -> None:
    has_ca = bool(tls.client_ca_file or tls.client_ca)
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if has_ca and context.verify_mode == ssl.CERT_NONE:
        raise ValueError("tls_server_config: client CAs have been configured without a client_auth_type")
    if not has_ca and context.verify_mode != ssl.CERT_NONE:
        raise ValueError(
            f"tls_server_config: client_auth_type {tls.client_auth_type} needs client_ca_file or client_ca"
        )
    if tls.client_allowed_sans is not None and context.verify_mode != ssl.CERT_REQUIRED:
        raise ValueError(
            "tls_server_config: client_allowed_sans requires client_auth_type RequireAndVerifyClientCert"
        )
    try:
        if tls.client_ca_file:
            context.load_verify_locations(cafile=tls.client_ca_file)
        elif tls.client_ca:
            context.load_verify_locations(cadata=tls.client_ca)
    except ssl.SSLError:
        raise ValueError("tls_server_config: the client CA holds no PEM certificate") from None
    except OSError as exc:
        raise ValueError(
            f"tls_server_config.client_ca_file: cannot read {exc.filename}: {exc.strerror}"
        ) from None
