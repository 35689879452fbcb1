"""The talea Helm chart: strict lint, Kubernetes schema validation, and the chart's rules.

Rendering uses Helm's own Go SDK through PyPI `helm-python-sdk` (no helm
binary, no cluster: `lookup` finds nothing). Every manifest of every
helm/ci/*-values.yaml is validated with `kubernetes-validate` in strict mode
against Kubernetes 1.30 and the newest version it knows. The Gateway API
HTTPRoute and the Prometheus Operator ServiceMonitor are CRDs whose schemas
no PyPI package ships: they are checked by the structural assertions below.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "talea"
CI_VALUES = sorted((ROOT / "helm" / "ci").glob("*-values.yaml"))
KUBE_VERSIONS = ["1.30.0", latest_version()]
# Custom resources: not in the Kubernetes schemas.
CRD_KINDS = {"HTTPRoute", "ServiceMonitor"}
RELEASE = "ledger"
NAMESPACE = "finance"


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def effective(values: dict[str, Any]) -> dict[str, Any]:
    """The chart's defaults with `values` over them, as an install sees them."""
    with helm.Chart.load(CHART) as chart:
        return chart.merge_values(values)


def render(
    values: dict[str, Any], *, is_upgrade: bool = False, name: str = RELEASE
) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(
            values,
            name=name,
            namespace=NAMESPACE,
            is_install=not is_upgrade,
            is_upgrade=is_upgrade,
        )
    docs = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                docs.append(doc)
    return docs


def render_error(values: dict[str, Any], *, is_upgrade: bool = False) -> str:
    with pytest.raises(helm.HelmError) as caught:
        render(values, is_upgrade=is_upgrade)
    return str(caught.value)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name_suffix: str) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"{kind} *{name_suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def pod_templates(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            out.append((f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]))
    return out


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def talea_deployments(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d
        for d in by_kind(docs, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] != "pgbouncer"
    ]


MINIMAL = load_values(ROOT / "helm" / "ci" / "minimal-values.yaml")


def test_there_are_ci_values() -> None:
    names = {p.name for p in CI_VALUES}
    assert {"minimal-values.yaml", "full-values.yaml", "gitops-values.yaml"} <= names


@pytest.fixture(params=CI_VALUES, ids=lambda p: p.name)
def ci(request: pytest.FixtureRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    values = load_values(request.param)
    return values, render(values)


@pytest.mark.parametrize("path", CI_VALUES, ids=lambda p: p.name)
def test_lint_is_clean_in_strict_mode(path: Path) -> None:
    values = load_values(path)
    for kube in KUBE_VERSIONS:
        report = helm.lint(
            CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{kube}"
        )
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not report["errors"] and not problems, report
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)


@pytest.mark.parametrize("path", CI_VALUES, ids=lambda p: p.name)
@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(path: Path, kube: str) -> None:
    docs = render(load_values(path))
    assert docs
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, kube, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = ".".join(str(p) for p in e.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} at {where}: {e.message}")


def test_schema_validation_is_real() -> None:
    """The validator does reject what a cluster would."""
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80, "targetPrt": 8080}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.30.0", strict=True)


def test_probes_readiness_on_health_liveness_on_livez(ci) -> None:
    _, docs = ci
    for deployment in talea_deployments(docs):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            name = f"{deployment['metadata']['name']}/{container['name']}"
            assert container["readinessProbe"]["httpGet"]["path"] == "/health", name
            assert container["livenessProbe"]["httpGet"]["path"] == "/livez", name
            assert container["readinessProbe"]["httpGet"]["port"] == "http", name


def test_pods_using_the_database_wait_for_the_bootstrap(ci) -> None:
    _, docs = ci
    gated = set()
    for name, template in pod_templates(docs):
        spec = template["spec"]
        uses_db = any("TALEA_DB_URL" in env(c) for c in spec["containers"])
        inits = spec.get("initContainers", [])
        if name.startswith("Job/"):
            assert not inits, "the bootstrap itself is not gated"
            continue
        if uses_db:
            assert [c["name"] for c in inits] == ["wait-bootstrap"], name
            assert inits[0]["args"] == ["wait-bootstrap"], name
            assert "TALEA_DB_URL" in env(inits[0]), name
            gated.add(template["metadata"]["labels"]["app.kubernetes.io/component"])
    assert {"write", "read", "relay", "fanout"} <= gated


def test_write_and_read_deployments(ci) -> None:
    _, docs = ci
    for role in ["write", "read"]:
        d = one(docs, "Deployment", f"-{role}")
        container = d["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == ["serve"]
        assert env(container)["TALEA_ROLE"]["value"] == role
    relay = one(docs, "Deployment", "-relay")
    assert relay["spec"]["replicas"] == 2, "one leader, one standby"


def test_direct_postgres_for_bootstrap_and_relay_pooled_for_the_rest(ci) -> None:
    values, docs = ci
    merged = effective(values)
    direct = f"@{merged['postgres']['host']}:{merged['postgres']['port']}/"
    pgb = merged["pgbouncer"]
    if pgb["enabled"]:
        host = f"{RELEASE}-talea-pgbouncer" if pgb["deploy"] else pgb["host"]
        pooled = f"@{host}:{pgb['port']}/"
    else:
        pooled = direct
    job = by_kind(docs, "Job")[0]
    job_env = env(job["spec"]["template"]["spec"]["containers"][0])
    assert direct in job_env["TALEA_DB_URL"]["value"]
    assert direct in job_env["TALEA_ADMIN_DB_URL"]["value"]
    relay = one(docs, "Deployment", "-relay")["spec"]["template"]["spec"]
    for container in [*relay["initContainers"], *relay["containers"]]:
        assert direct in env(container)["TALEA_DB_URL"]["value"], container["name"]
    for suffix in ["-write", "-read", "-fanout"]:
        spec = one(docs, "Deployment", suffix)["spec"]["template"]["spec"]
        for container in [*spec["initContainers"], *spec["containers"]]:
            assert pooled in env(container)["TALEA_DB_URL"]["value"], (suffix, container["name"])


def test_passwords_never_appear_in_pod_specs(ci) -> None:
    _, docs = ci
    for name, template in pod_templates(docs):
        for container in [*template["spec"].get("initContainers", []), *template["spec"]["containers"]]:
            for key, var in env(container).items():
                if key.endswith(("PASSWORD", "TOKEN")):
                    assert "valueFrom" in var, f"{name}: {key} comes from a Secret"
                if key.endswith("DB_URL"):
                    assert re.search(r"://[^:]+:\$\(TALEA_(ADMIN|DB)_PASSWORD\)@", var["value"]), key


def test_a_pdb_selects_every_workload(ci) -> None:
    _, docs = ci
    pdbs = by_kind(docs, "PodDisruptionBudget")
    for deployment in by_kind(docs, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [
            p
            for p in pdbs
            if all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())
        ]
        assert len(matching) == 1, deployment["metadata"]["name"]
        assert matching[0]["spec"]["minAvailable"] >= 1


def test_restricted_security_contexts(ci) -> None:
    _, docs = ci
    for name, template in pod_templates(docs):
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert sc["readOnlyRootFilesystem"] is True, name


def test_prestop_sleep_and_grace_let_clients_drain(ci) -> None:
    _, docs = ci
    for deployment in by_kind(docs, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        sleep = spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        grace = spec.get("terminationGracePeriodSeconds", 30)
        assert 0 < sleep < grace, deployment["metadata"]["name"]
    fanout = one(docs, "Deployment", "-fanout")["spec"]["template"]["spec"]
    assert fanout["terminationGracePeriodSeconds"] >= 60, "SSE streams drain and resume"


def test_credentials_secret_is_kept_and_referenced(ci) -> None:
    values, docs = ci
    existing = values.get("credentials", {}).get("existingSecret")
    secrets = by_kind(docs, "Secret")
    if existing:
        assert not secrets, "GitOps: the chart renders no credentials"
        name = existing
    else:
        assert len(secrets) == 1
        secret = secrets[0]
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert set(secret["data"]) == {
            "db-password",
            "api-token",
            "scope-service-token",
            "signing-key.json",
        }
        key = json.loads(base64.b64decode(secret["data"]["signing-key.json"]))
        assert key["algorithm"] == "ed25519"
        assert re.fullmatch(r"[0-9a-f]{64}", key["seed"]), key
        name = secret["metadata"]["name"]
    refs = set()
    for _, template in pod_templates(docs):
        for container in [*template["spec"].get("initContainers", []), *template["spec"]["containers"]]:
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["key"] in ("db-password", "api-token", "scope-service-token"):
                    refs.add(ref["name"])
    assert refs == {name}


def test_bootstrap_job_is_named_by_its_content(ci) -> None:
    values, docs = ci
    job = by_kind(docs, "Job")[0]
    name = job["metadata"]["name"]
    assert re.fullmatch(rf"{RELEASE}-talea-bootstrap-[0-9a-f]{{10}}", name), name
    assert len(name) <= 63
    again = by_kind(render(values), "Job")[0]["metadata"]["name"]
    assert again == name, "the same values give the same Job (an unchanged upgrade reruns nothing)"
    changed = merge(values, {"bootstrap": {"seed": "[[assets]]\ncode = \"X\"\nscale = 0\n"}})
    assert by_kind(render(changed), "Job")[0]["metadata"]["name"] != name
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    mode = effective(values)["bootstrap"]["mode"]
    assert args[:3] == ["bootstrap", "--mode", mode]
    assert "helm.sh/hook" not in job["metadata"]["annotations"]


def test_httproute_sends_reads_to_read_and_the_rest_to_write() -> None:
    values = load_values(ROOT / "helm" / "ci" / "full-values.yaml")
    route = one(render(values), "HTTPRoute", "-talea")
    rules = route["spec"]["rules"]
    stream, reads, rest = rules
    assert stream["matches"][0]["path"]["type"] == "RegularExpression"
    assert stream["backendRefs"][0]["name"] == f"{RELEASE}-talea-fanout"
    assert {m["method"] for m in reads["matches"]} == {"GET", "HEAD"}
    assert reads["backendRefs"][0]["name"] == f"{RELEASE}-talea-read"
    assert all("method" not in m for m in rest["matches"])
    assert rest["backendRefs"][0]["name"] == f"{RELEASE}-talea-write"
    assert route["spec"]["parentRefs"] == values["httpRoute"]["parentRefs"]
    services = {s["metadata"]["name"] for s in by_kind(render(values), "Service")}
    for rule in rules:
        for ref in rule["backendRefs"]:
            assert ref["name"] in services and ref["port"] == 8080


def test_ingress_sends_everything_to_write() -> None:
    values = load_values(ROOT / "helm" / "ci" / "gitops-values.yaml")
    ingress = one(render(values), "Ingress", "-talea")
    api, stream = ingress["spec"]["rules"]
    assert api["http"]["paths"][0]["backend"]["service"]["name"] == f"{RELEASE}-talea-write"
    assert stream["host"] == values["ingress"]["streamHost"]
    assert stream["http"]["paths"][0]["backend"]["service"]["name"] == f"{RELEASE}-talea-fanout"


def test_servicemonitor_scrapes_every_component() -> None:
    docs = render(load_values(ROOT / "helm" / "ci" / "full-values.yaml"))
    monitor = one(docs, "ServiceMonitor", "-talea")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    selected = set(monitor["spec"]["selector"]["matchExpressions"][0]["values"])
    for service in by_kind(docs, "Service"):
        component = service["metadata"]["labels"]["app.kubernetes.io/component"]
        if any(p["name"] == "metrics" for p in service["spec"]["ports"]):
            assert component in selected, component


def test_first_fresh_install_generates_credentials() -> None:
    docs = render(MINIMAL)
    secret = one(docs, "Secret", "-credentials")
    assert all(len(v) > 20 for v in secret["data"].values())
    other = one(render(MINIMAL), "Secret", "-credentials")
    assert other["data"]["db-password"] != secret["data"]["db-password"], "random"


def test_recover_without_the_secret_fails_at_render_time() -> None:
    message = render_error(merge(MINIMAL, {"bootstrap": {"mode": "recover"}}))
    assert "credentials Secret ledger-talea-credentials was not found" in message
    assert "recover" in message and "existingSecret" in message


def test_upgrade_without_the_secret_fails_at_render_time() -> None:
    message = render_error(MINIMAL, is_upgrade=True)
    assert "was not found" in message and "upgrade" in message


def test_existing_secret_serves_gitops_recover_and_upgrades() -> None:
    values = merge(
        MINIMAL, {"credentials": {"existingSecret": "mine"}, "bootstrap": {"mode": "recover"}}
    )
    docs = render(values, is_upgrade=True)
    assert not by_kind(docs, "Secret")
    job = by_kind(docs, "Job")[0]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][2] == "recover"


def test_an_upgrade_runs_the_bootstrap_in_recover_mode() -> None:
    values = merge(MINIMAL, {"credentials": {"existingSecret": "mine"}})
    install = by_kind(render(values), "Job")[0]
    upgrade = by_kind(render(values, is_upgrade=True), "Job")[0]
    assert install["spec"]["template"]["spec"]["containers"][0]["args"][2] == "fresh"
    assert upgrade["spec"]["template"]["spec"]["containers"][0]["args"][2] == "recover"
    assert upgrade["metadata"]["annotations"]["talea.dev/bootstrap-mode"] == "recover"


def test_the_found_secret_is_reused(tmp_path: Path) -> None:
    """`lookup` returns nothing offline, so the reuse branch is exercised
    through the chart's own helper with a Secret as lookup would return it."""
    harness = tmp_path / "harness"
    (harness / "templates").mkdir(parents=True)
    (harness / "Chart.yaml").write_text(
        "apiVersion: v2\nname: talea\nversion: 0.1.0\nappVersion: \"0.1.0\"\n"
    )
    shutil.copy(CHART / "values.yaml", harness / "values.yaml")
    shutil.copy(CHART / "templates" / "_helpers.tpl", harness / "templates" / "_helpers.tpl")
    (harness / "templates" / "probe.yaml").write_text(
        """{{- $existing := ternary (dict "data" .Values.probe.data) (dict) .Values.probe.found }}
apiVersion: v1
kind: Secret
metadata:
  name: probe
data:
  {{- include "talea.credentialsData" (dict "root" . "existing" $existing) | nindent 2 }}
"""
    )
    with open(harness / "values.yaml", "a") as f:
        f.write(
            "\nprobe:\n  found: true\n  data:\n    db-password: b2xk\n    api-token: dG9r\n"
        )

    def probe(values: dict[str, Any], upgrade: bool) -> dict[str, Any]:
        with helm.Chart.load(harness) as chart:
            text = chart.render(values, name=RELEASE, is_install=not upgrade, is_upgrade=upgrade)
        return yaml.safe_load(text["talea/templates/probe.yaml"])["data"]

    for upgrade in (False, True):
        for mode in ("fresh", "recover"):
            data = probe({"bootstrap": {"mode": mode}}, upgrade)
            assert data["db-password"] == "b2xk", "reused, never regenerated"
            assert data["api-token"] == "dG9r"
            assert data["scope-service-token"], "a key the old Secret lacked is added"
            assert data["signing-key.json"], "a key the old Secret lacked is added"
    with helm.Chart.load(harness) as chart:
        with pytest.raises(helm.HelmError, match="has no db-password"):
            chart.render(
                {"probe": {"data": {"db-password": None}}, "bootstrap": {"mode": "recover"}},
                name=RELEASE,
                is_install=True,
            )
    # Without a found Secret, the same helper fails on upgrade.
    with helm.Chart.load(harness) as chart:
        with pytest.raises(helm.HelmError, match="was not found"):
            chart.render({"probe": {"found": False}}, name=RELEASE, is_upgrade=True)


def test_values_schema_rejects_a_bad_mode_and_unknown_keys() -> None:
    with helm.Chart.load(CHART) as chart:
        assert chart.schema["properties"]["bootstrap"]["properties"]["mode"]["enum"] == [
            "fresh",
            "recover",
        ]
        with pytest.raises(helm.HelmError, match="mode"):
            chart.validate_schema(merge(MINIMAL, {"bootstrap": {"mode": "sideways"}}))
        with pytest.raises(helm.HelmError):
            chart.validate_schema(merge(MINIMAL, {"talead": {"replica": 3}}))
    assert "mode" in render_error(merge(MINIMAL, {"bootstrap": {"mode": "sideways"}}))


def test_required_values_fail_with_a_message() -> None:
    assert "postgres.host is required" in render_error({"postgres": {"admin": {"existingSecret": "a"}}})
    assert "postgres.admin.existingSecret is required" in render_error(
        {"postgres": {"host": "db"}}
    )
    assert "parentRefs" in render_error(merge(MINIMAL, {"httpRoute": {"enabled": True}}))
