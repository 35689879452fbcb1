"""docker-compose.yml, the Dockerfile, Prometheus and the Grafana dashboard, checked statically.

No container runs here: the compose file is parsed by the compose
specification's reference parser (PyPI `compose-spec`, strict about keys and
values), the Prometheus configuration and every dashboard query go through
`promtool`, and the dashboard may only query metrics the services export.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from compose_spec import PyCompose

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "talea.json"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
TELEMETRY = ROOT / "libs" / "talea-telemetry" / "src"

# Metrics of talea-relay and talea-fanout, which the stream issue exports
# (they may not be in libs/talea-telemetry yet). Keep this list short and
# explicit: every other name the dashboard queries must be defined in
# libs/talea-telemetry/src.
STREAM_METRICS = {
    "talea_relay_published_total",
    "talea_relay_lag_events",
    "talea_fanout_subscribers",
    "talea_fanout_delivery_latency_seconds",
    "talea_fanout_slow_consumer_disconnects_total",
    "talea_fanout_gap_repairs_total",
    "talea_fanout_backfill_reads_total",
}

TALEA_SERVICES = ["talead", "relay", "fanout", "scope"]
LONG_RUNNING = ["postgres", "nats", *TALEA_SERVICES]


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: install the Debian package `prometheus` (scripts/test does)"
    return path


@pytest.fixture(scope="module")
def compose() -> dict:
    parsed = PyCompose.from_yaml(COMPOSE.read_text())
    parsed.validate()
    return yaml.safe_load(COMPOSE.read_text())


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment is written as a mapping"
    return {k: str(v) for k, v in env.items()}


def test_compose_file_follows_the_compose_specification() -> None:
    parsed = PyCompose.from_yaml(COMPOSE.read_text())
    parsed.validate()
    assert set(parsed.service_names()) == {
        "postgres",
        "nats",
        "bootstrap",
        *TALEA_SERVICES,
        "prometheus",
        "grafana",
    }


def test_the_reference_parser_rejects_what_compose_would() -> None:
    """The validator is strict: an unknown key or a bad duration fails."""
    with pytest.raises(ValueError):
        PyCompose.from_yaml("services:\n  a:\n    image: x\n    helthcheck: {}\n")
    with pytest.raises(ValueError):
        PyCompose.from_yaml(
            "services:\n  a:\n    image: x\n    healthcheck:\n      interval: 5x\n"
        )


def test_postgres_and_nats(compose: dict) -> None:
    pg = compose["services"]["postgres"]
    assert pg["image"].startswith("postgres:17")
    env = env_of(pg)
    assert env["POSTGRES_USER"] == "talea" and env["POSTGRES_DB"] == "talea"
    volume = pg["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "a named volume, not a bind mount"
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])

    nats = compose["services"]["nats"]
    assert "--jetstream" in nats["command"]
    assert "js-enabled-only=true" in " ".join(nats["healthcheck"]["test"])


def test_every_dependency_exists_and_waits_for_the_right_condition(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health"
    deps = {name: s.get("depends_on", {}) for name, s in services.items()}
    assert deps["bootstrap"]["postgres"]["condition"] == "service_healthy"
    for name in ["talead", "relay", "fanout"]:
        assert deps[name]["bootstrap"]["condition"] == "service_completed_successfully", name
    for name in ["relay", "fanout"]:
        assert deps[name]["nats"]["condition"] == "service_healthy", name
    for name in ["talead", "fanout"]:
        assert deps[name]["scope"]["condition"] == "service_healthy", name


def test_long_running_services_have_healthchecks_and_the_bootstrap_runs_once(
    compose: dict,
) -> None:
    services = compose["services"]
    for name in [*LONG_RUNNING, "prometheus", "grafana"]:
        assert "healthcheck" in services[name], name
    for name in TALEA_SERVICES:
        test = " ".join(services[name]["healthcheck"]["test"])
        assert "/health" in test, f"{name}: readiness, the condition dependents wait on"
    bootstrap = services["bootstrap"]
    assert bootstrap["restart"] == "no"
    assert bootstrap["command"][0] == "bootstrap"
    assert "--mode" in bootstrap["command"]
    env = env_of(bootstrap)
    assert "TALEA_ADMIN_DB_URL" in env and "TALEA_DB_URL" in env


def test_direct_postgres_for_bootstrap_and_relay(compose: dict) -> None:
    services = compose["services"]
    for name in ["bootstrap", "relay"]:
        url = env_of(services[name])["TALEA_DB_URL"]
        assert "@postgres:5432/" in url, f"{name} connects to Postgres directly"
    assert env_of(services["relay"])["TALEA_NATS_URL"] == "nats://nats:4222"
    assert env_of(services["fanout"])["TALEA_SCOPE_URL"].startswith("http://scope:")
    assert env_of(services["talead"])["TALEA_SCOPE_URL"].startswith("http://scope:")


def test_metrics_profile_and_published_ports(compose: dict) -> None:
    services = compose["services"]
    profiled = {n for n, s in services.items() if "profiles" in s}
    assert profiled == {"prometheus", "grafana"}
    for name in profiled:
        assert services[name]["profiles"] == ["metrics"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_images_are_dockerfile_targets(compose: dict) -> None:
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", DOCKERFILE.read_text(), re.M))
    assert {"builder", "runtime", "talead", "talea-relay", "talea-fanout", "talea-scope"} <= stages
    for name, service in compose["services"].items():
        if "build" in service:
            assert service["build"]["target"] in stages, name
    dockerfile = DOCKERFILE.read_text()
    assert "USER 10001:10001" in dockerfile, "images run as a numeric non-root user"
    assert "cargo build --release --locked" in dockerfile


def test_prometheus_config_passes_promtool() -> None:
    out = subprocess.run(
        [promtool(), "check", "config", str(PROMETHEUS)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_prometheus_scrapes_every_services_metrics_listener(compose: dict) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name in TALEA_SERVICES:
        bind = env_of(compose["services"][name])["TALEA_METRICS_BIND"]
        port = bind.rsplit(":", 1)[1]
        assert f"{name}:{port}" in targets, f"{name}'s metrics listener is not scraped"


def exported_metric_families() -> set[str]:
    """Every family name libs/talea-telemetry defines: the literal names, and
    the `format!("{prefix}_…")` names of families registered under a prefix
    (`register(&registry, "talea_fanout")`)."""
    names: set[str] = set()
    prefixes: set[str] = set()
    suffixes: set[str] = set()
    for source in sorted(TELEMETRY.glob("**/*.rs")):
        text = source.read_text()
        names |= set(re.findall(r'"(talea_[a-z0-9_]+)"', text))
        prefixes |= set(re.findall(r'register\(\s*&\w+,\s*"(talea_[a-z0-9_]+)"\s*\)', text))
        suffixes |= set(re.findall(r'format!\("\{prefix\}(_[a-z0-9_]+)"\)', text))
    return (names - prefixes) | {p + s for p in prefixes for s in suffixes}


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs.append(target["expr"])
    return exprs


def test_dashboard_queries_only_metrics_the_services_export() -> None:
    families = exported_metric_families() | STREAM_METRICS
    assert "talea_commits_total" in families, "the telemetry file was read"
    used = set()
    for expr in dashboard_queries():
        names = re.findall(r"\btalea_[a-z0-9_]+", expr)
        assert names or re.search(r"\bup\{", expr), f"no talea metric in {expr}"
        for name in names:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            assert family in families, f"the dashboard queries {name}, which nothing exports"
            used.add(family)
    # The core ledger metrics are all on the dashboard.
    for family in [
        "talea_commits_total",
        "talea_http_requests_total",
        "talea_http_request_duration_seconds",
        "talea_requests_shed_total",
        "talea_db_pool_connections",
        "talea_write_queue_depth",
    ]:
        assert family in used, family


def test_stream_metrics_list_names_only_stream_services() -> None:
    for name in STREAM_METRICS:
        assert name.startswith(("talea_relay_", "talea_fanout_")), name


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses every expression as a recording rule.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"talea:dashboard_query_{i}",
                        "expr": expr.replace("$__rate_interval", "5m"),
                    }
                    for i, expr in enumerate(dashboard_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_grafana_provisioning_matches_the_dashboard(compose: dict) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] == "talea" and dashboard["uid"] == "talea"
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    uids = {d["uid"] for d in datasources["datasources"]}
    assert any(d["url"] == "http://prometheus:9090" for d in datasources["datasources"])
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "talea.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
