"""Deploy files: Compose, Dockerfile and entrypoint, Kubernetes manifests, systemd unit, Prometheus config."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from service.config import load
from service.webconfig import load_web_config
from tests.observability.support import ROOT, load_yaml, require_tool, run_tool, shared_path

DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = load_yaml(DEPLOY / "compose.yaml")


def kubernetes_documents() -> dict[str, dict[str, Any]]:
    documents = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        document = load_yaml(path)
        documents[document["kind"]] = document
    return documents


# Compose -----------------------------------------------------------------------------------------------------------


def test_compose_matches_the_compose_spec() -> None:
    schema = json.loads(shared_path("schemas", "compose-spec.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(COMPOSE)


def test_compose_runs_the_whole_stack_from_pinned_images() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"flockwatch", "postgres", "prometheus", "alertmanager", "grafana"}
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image version"
    assert services["grafana"]["image"] == "grafana/grafana:11.6.0", "the dashboards target Grafana 11.6"
    build = services["flockwatch"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_compose_bind_mounts_exist() -> None:
    """Every bind mount is in the repository, or made by deploy/web/make-secrets.sh (in deploy/web/secrets)."""
    made = (DEPLOY / "web/make-secrets.sh").read_text(encoding="utf-8")
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./web/secrets"):
                assert source == "./web/secrets" or Path(source).name in made, (
                    f"{name}: {source} is never made"
                )
            elif source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"


def test_make_secrets_makes_a_web_config_flockwatch_accepts(tmp_path: Path) -> None:
    require_tool("openssl")
    script = tmp_path / "make-secrets.sh"
    script.write_text((DEPLOY / "web/make-secrets.sh").read_text(encoding="utf-8"), encoding="utf-8")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}  # python3 with bcrypt first
    result = subprocess.run(
        ["sh", str(script), "flockwatch.monitoring.svc"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    secrets = tmp_path / "secrets"
    config = load_web_config(secrets / "web-config.yml")
    assert config.tls is not None and set(config.users) == {"prometheus", "probe"}
    san = run_tool(
        "openssl", "x509", "-in", str(secrets / "tls.crt"), "-noout", "-ext", "subjectAltName"
    ).stdout
    assert "DNS:flockwatch" in san and "IP Address:127.0.0.1" in san and "flockwatch.monitoring.svc" in san


def test_compose_wiring_matches_the_configuration_files() -> None:
    prometheus = load_yaml(DEPLOY / "prometheus/prometheus.yml")
    listen = load_yaml(DEPLOY / "flockwatch.yml")["http"]["listen"]
    scrape = next(job for job in prometheus["scrape_configs"] if job["job_name"] == "flockwatch")
    assert scrape["static_configs"][0]["targets"] == [f"flockwatch:{listen.rsplit(':', 1)[1]}"]
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    datasources = (ROOT / "grafana/provisioning/datasources/flockwatch.yaml").read_text(encoding="utf-8")
    needed = set(re.findall(r"\$\{(\w+)\}", datasources))
    assert needed <= set(COMPOSE["services"]["grafana"]["environment"])
    assert "FLOCKWATCH_DATABASE__URL" in COMPOSE["services"]["flockwatch"]["environment"]


def test_prometheus_config_is_valid(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    text = (DEPLOY / "prometheus/prometheus.yml").read_text(encoding="utf-8")
    path = tmp_path / "prometheus.yml"
    path.write_text(text.replace("/etc/prometheus/rules", str(DEPLOY / "prometheus/rules")), encoding="utf-8")
    result = run_tool(promtool, "check", "config", str(path))
    assert result.returncode == 0 and "1 rule files found" in result.stdout, result.stdout + result.stderr


# Container image ---------------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_is_slim_non_root_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions()
    bases = [argument for keyword, argument in instructions if keyword == "FROM"]
    assert all("slim" in base for base in bases)
    user = [argument for keyword, argument in instructions if keyword == "USER"][-1]
    assert user.split(":")[0] not in {"0", "root"}
    assert any(keyword == "HEALTHCHECK" and "/healthz" in argument for keyword, argument in instructions)
    assert ("ENTRYPOINT", '["flockwatch-entrypoint"]') in instructions
    for keyword, argument in instructions:
        if keyword == "COPY" and "--from" not in argument:
            for source in argument.split()[:-1]:
                assert (ROOT / source).exists() or source == "README.md", f"COPY {source}: no such path"


@pytest.mark.parametrize(
    ("args", "calls"),
    [
        ([], ["db upgrade", "run"]),
        (["run"], ["db upgrade", "run"]),
        (["check-config"], ["check-config"]),
    ],
)
def test_entrypoint_upgrades_the_database_before_running(
    tmp_path: Path, args: list[str], calls: list[str]
) -> None:
    log = tmp_path / "calls"
    stub = tmp_path / "flockwatch"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {log}\n', encoding="utf-8")
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    subprocess.run(["sh", str(DEPLOY / "docker/entrypoint.sh"), *args], env=env, check=True, timeout=10)
    assert log.read_text(encoding="utf-8").splitlines() == calls


def test_entrypoint_stops_when_the_upgrade_fails(tmp_path: Path) -> None:
    stub = tmp_path / "flockwatch"
    stub.write_text('#!/bin/sh\n[ "$1" = db ] && exit 2\necho ran\n', encoding="utf-8")
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["sh", str(DEPLOY / "docker/entrypoint.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 2 and "ran" not in result.stdout


def test_deploy_configuration_files_are_valid(tmp_path: Path) -> None:
    assert load(DEPLOY / "flockwatch.yml", environ={}).http.listen == "0.0.0.0:9808"
    configmap = kubernetes_documents()["ConfigMap"]
    path = tmp_path / "flockwatch.yml"
    path.write_text(configmap["data"]["flockwatch.yml"], encoding="utf-8")
    url = "postgresql+psycopg://flockwatch:secret@postgres:5432/flockwatch"
    assert load(path, environ={"FLOCKWATCH_DATABASE__URL": url}).database.url == url


# Kubernetes --------------------------------------------------------------------------------------------------------


def test_core_manifests_match_the_kubernetes_schemas() -> None:
    try:
        import kubernetes_validate
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("kubernetes-validate is not installed (pip install kubernetes-validate)")
    for kind in ("ConfigMap", "Deployment", "Service"):
        kubernetes_validate.validate(kubernetes_documents()[kind], "1.37.0", strict=True)


def test_manifests_refer_to_each_other() -> None:
    docs = kubernetes_documents()
    deployment, service, monitor = docs["Deployment"], docs["Service"], docs["ServiceMonitor"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["name"] == "flockwatch", "the Operator's job label is the Service name"
    ports = {port["name"] for port in service["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= ports
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    container = pod["spec"]["containers"][0]
    secret = next(env for env in container["env"] if env["name"] == "FLOCKWATCH_DATABASE__URL")
    assert "secretKeyRef" in secret["valueFrom"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    listed = set(load_yaml(KUBERNETES / "kustomization.yaml")["resources"])
    assert listed == {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}


def test_prometheusrule_is_generated_from_the_rule_file() -> None:
    result = run_tool(sys.executable, str(KUBERNETES / "generate.py"), "--check")
    assert result.returncode == 0, result.stderr
    rule = kubernetes_documents()["PrometheusRule"]
    assert rule["spec"]["groups"] == load_yaml(DEPLOY / "prometheus/rules/flockwatch.rules.yml")["groups"]


# systemd -----------------------------------------------------------------------------------------------------------

UNIT = DEPLOY / "systemd/flockwatch.service"


def test_systemd_unit_is_hardened_and_runs_migrations_first() -> None:
    text = UNIT.read_text(encoding="utf-8")
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, flags=re.MULTILINE))
    for key in (
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "RestrictAddressFamilies",
        "SystemCallFilter",
        "CapabilityBoundingSet",
        "MemoryDenyWriteExecute",
    ):
        assert key in settings, f"{key} missing"
    assert settings["ProtectSystem"] == "strict" and settings["RestartPreventExitStatus"] == "2"
    assert settings["ExecStartPre"].endswith("flockwatch db upgrade")
    assert settings["ExecStart"].endswith("flockwatch run")


def test_systemd_accepts_the_unit_and_rates_it_well_hardened(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    unit = tmp_path / "flockwatch.service"
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace("/opt/flockwatch/bin/flockwatch", "/bin/true"),
        encoding="utf-8",
    )
    verify = run_tool(analyze, "verify", str(unit))
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
    security = run_tool(analyze, "security", "--offline=true", str(unit))
    match = re.search(r"Overall exposure level for flockwatch.service: ([\d.]+)", security.stdout)
    assert match, security.stdout + security.stderr
    assert float(match.group(1)) <= 2.0, security.stdout


# Everything --------------------------------------------------------------------------------------------------------


def test_no_placeholder_text_in_deploy_or_grafana() -> None:
    pattern = re.compile(r"\b(TODO|FIXME|XXX|TBD|placeholder|lorem ipsum|change-?me)\b", re.IGNORECASE)
    for folder in (DEPLOY, ROOT / "grafana"):
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix != ".pyc":
                for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                    assert not pattern.search(line), f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
