"""Deployment files: docker-compose.yaml, the Helm chart, the images, and the settings they hand the DAGs.

Runs on CPU with no Docker engine and no cluster. What it checks, and with what:
  - every YAML parses; compose and chart structure (healthchecks, depends_on conditions, 127.0.0.1-only ports,
    no committed secrets, names shared between the chart and the Airflow subchart) - plain Python;
  - `docker compose config` / `docker-compose config` on the compose file with a throwaway .env made from
    .env.example - needs a Compose implementation;
  - values.yaml, the ci/ override examples and deliberately broken overrides against values.schema.json
    (jsonschema);
  - the chart rendered by the real Helm v4 engine and the manifests validated against the Kubernetes schemas -
    needs the tools from scripts/install-deploy-tools.sh (helm-sdkpy, kubernetes-validate). helm-sdkpy exposes
    `helm lint`, not `helm template`: the test injects a template that `fail`s with every other template's
    output, which lint mode logs instead of aborting on, and reads the manifests back from that log.
Missing tools skip those tests with the install command; DEPLOY_TOOLS_REQUIRED=1 turns the skips into failures.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
CHART = ROOT / "helm" / "conf-profile"
TOOLS_VENV = Path(os.environ.get("DEPLOY_TOOLS_VENV", ROOT / ".venv" / "deploy-tools"))
INSTALL_HINT = "run `bash scripts/install-deploy-tools.sh`"

ONE_SHOT = {"minio-init", "airflow-init", "student-export"}
LONG_RUNNING = {
    "postgres", "minio", "mlflow", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer", "vllm", "vllm-student",
}
PROFILED = {"vllm", "vllm-student", "student-export"}  # only with `--profile gpu` / `--profile student`
AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
# .env keys that hold secrets: committed empty, required (${VAR:?...}) wherever compose uses them.
REQUIRED_SECRETS = {
    "POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "MINIO_ROOT_PASSWORD", "S3_SECRET_KEY",
    "AIRFLOW_FERNET_KEY", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_ADMIN_PASSWORD",
}
OPTIONAL_SECRETS = {"VLLM_API_KEY", "HF_TOKEN"}


def _missing_tool(reason: str) -> None:
    if os.environ.get("DEPLOY_TOOLS_REQUIRED") == "1":
        pytest.fail(f"{reason} ({INSTALL_HINT}); DEPLOY_TOOLS_REQUIRED=1")
    pytest.skip(f"{reason}: {INSTALL_HINT}")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _merge(base: Any, override: Any) -> Any:
    """Helm's values merge: maps merge key by key, anything else (lists included) is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = copy.deepcopy(base)
        for k, v in override.items():
            out[k] = _merge(out[k], v) if k in out else copy.deepcopy(v)
        return out
    return copy.deepcopy(override)


# ----------------------------------------------------------------------------------------------------------
# YAML everywhere
# ----------------------------------------------------------------------------------------------------------

def _yaml_files() -> list[Path]:
    files = [COMPOSE, CHART / "Chart.yaml", CHART / "values.yaml", *sorted((CHART / "ci").glob("*.yaml"))]
    files += sorted((ROOT / "docker").rglob("*.yaml"))
    return files


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_parses(path: Path) -> None:
    data = _load(path)
    assert isinstance(data, dict) and data, f"{path} should hold a non-empty mapping"


def test_settings_files_load_into_conf_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings files compose mounts must pass conf-profile's own loader (extra keys are forbidden)."""
    from conf_profile.config import Settings

    for key in list(os.environ):
        if key.startswith("CONF_PROFILE_"):
            monkeypatch.delenv(key)
    files = sorted((ROOT / "docker" / "conf-profile").glob("*.yaml"))
    assert files
    for f in files:
        settings = Settings.load(f)
        assert settings.compute.mode == "local"
    gpu = Settings.load(ROOT / "docker" / "conf-profile" / "settings-gpu.yaml")
    assert gpu.compute.vllm_base_url == "http://vllm:8000/v1"
    assert any(t.backend == "openai" and t.model == "teacher" for t in gpu.labels.teachers)


# ----------------------------------------------------------------------------------------------------------
# docker-compose.yaml
# ----------------------------------------------------------------------------------------------------------

def _env_example() -> dict[str, str]:
    env = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            env[m.group(1)] = m.group(2)
    return env


def _filled_env(tmp_path: Path, drop: str | None = None) -> Path:
    """A throwaway .env: .env.example with every empty secret filled in (and optionally one left empty)."""
    import base64
    import secrets

    lines = []
    for key, value in _env_example().items():
        if value == "" and key != drop:
            if key == "AIRFLOW_FERNET_KEY":
                value = base64.urlsafe_b64encode(os.urandom(32)).decode()
            else:
                value = secrets.token_hex(16)
        lines.append(f"{key}={value}")
    path = tmp_path / ".env"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def compose_cmd() -> list[str]:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    _missing_tool("neither `docker compose` nor `docker-compose` is installed")
    raise AssertionError  # unreachable


def _compose(cmd: list[str], env_file: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in _env_example()}  # only the env file counts
    return subprocess.run(
        [*cmd, "--env-file", str(env_file), "-f", str(COMPOSE), *args],
        capture_output=True, text=True, cwd=env_file.parent, env=env, timeout=120,
    )


@pytest.mark.parametrize("profile", [[], ["--profile", "gpu"], ["--profile", "student"]],
                         ids=["default", "gpu", "student"])
def test_compose_config_is_valid(compose_cmd: list[str], tmp_path: Path, profile: list[str]) -> None:
    env_file = _filled_env(tmp_path)
    quiet = _compose(compose_cmd, env_file, *profile, "config", "-q")
    assert quiet.returncode == 0, quiet.stderr
    full = _compose(compose_cmd, env_file, *profile, "config")
    assert full.returncode == 0, full.stderr
    services = set(yaml.safe_load(full.stdout)["services"])
    # Compose v2 lists only the services of the active profiles; v1 (Debian's docker-compose) lists all.
    assert (LONG_RUNNING | ONE_SHOT) - PROFILED <= services <= LONG_RUNNING | ONE_SHOT
    if profile == ["--profile", "gpu"]:
        assert "vllm" in services
    if profile == ["--profile", "student"]:
        assert {"vllm-student", "student-export"} <= services


def test_compose_refuses_to_start_without_a_secret(compose_cmd: list[str], tmp_path: Path) -> None:
    env_file = _filled_env(tmp_path, drop="AIRFLOW_FERNET_KEY")
    result = _compose(compose_cmd, env_file, "config", "-q")
    assert result.returncode != 0
    assert "AIRFLOW_FERNET_KEY" in result.stderr


@pytest.fixture(scope="module")
def compose() -> dict:
    return _load(COMPOSE)


def test_compose_services_healthchecks_and_dependencies(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == LONG_RUNNING | ONE_SHOT
    for name in LONG_RUNNING:
        test = services[name].get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"
        assert services[name].get("restart") == "unless-stopped", name
    for name in ONE_SHOT:
        assert services[name].get("restart") == "no", name
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must use conditions"
        for target, spec in deps.items():
            assert target in services, f"{name} depends on unknown {target}"
            want = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert spec == {"condition": want}, f"{name} -> {target}: {spec}"
    # the start order the stack relies on
    assert "airflow-init" in services["airflow-scheduler"]["depends_on"]
    assert "minio-init" in services["mlflow"]["depends_on"]
    assert "mlflow" in services["airflow-apiserver"]["depends_on"]
    assert "airflow-init" not in services["airflow-init"].get("depends_on", {})


def test_compose_ports_only_on_loopback(compose: dict) -> None:
    published = []
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name} publishes {port!r}"
            published.append(port)
    assert len(published) == 6  # airflow, mlflow, minio api + console, vllm, vllm-student


def test_compose_airflow_and_conf_profile_wiring(compose: dict) -> None:
    from conf_profile.config import Settings

    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        svc = services[name]
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "CONF_PROFILE_CONFIG", "CONF_PROFILE_LAKE",
                    "CONF_PROFILE_S3__ENDPOINT_URL", "CONF_PROFILE_MLFLOW__TRACKING_URI", "AWS_ACCESS_KEY_ID"):
            assert key in env, f"{name} lacks {key}"
        mounts = " ".join(svc["volumes"])
        assert "./dags:/opt/airflow/dags" in mounts and "./plugins:/opt/airflow/plugins" in mounts
        assert ":/opt/conf-profile/config.yaml" in mounts
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert services["airflow-dag-processor"]["command"] == "dag-processor"
    assert services["airflow-triggerer"]["command"] == "triggerer"
    assert services["airflow-scheduler"]["command"] == "scheduler"
    # every CONF_PROFILE_<SECTION>__<FIELD> names a real settings field
    for key in services["airflow-scheduler"]["environment"]:
        if key.startswith("CONF_PROFILE_") and key != "CONF_PROFILE_CONFIG":
            model: Any = Settings
            for part in key.removeprefix("CONF_PROFILE_").lower().split("__"):
                assert part in model.model_fields, f"{key}: no settings field {part!r}"
                model = model.model_fields[part].annotation
    # MLflow: Postgres backend, proxied artifacts to the mlflow bucket, one worker, no job runner
    mlflow = services["mlflow"]
    script = mlflow["command"][0]
    for flag in ("--serve-artifacts", "--artifacts-destination s3://mlflow", "--workers 1", "mlflow db upgrade"):
        assert flag in script
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://mlflow:")
    assert mlflow["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "mlflow:5000" in mlflow["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert "mc mb --ignore-existing local/lake local/mlflow" in services["minio-init"]["command"][0]
    # vLLM: gpu profile, an NVIDIA device reservation, OpenAI server on 8000
    vllm = services["vllm"]
    assert vllm["profiles"] == ["gpu"]
    device = vllm["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert vllm["entrypoint"] == ["vllm", "serve"] and "--port=8000" in vllm["command"]
    assert "--served-model-name=teacher" in vllm["command"]
    # the student server: profile student, serves the folder student-export wrote, under the name the
    # inference settings default to
    student, export = services["vllm-student"], services["student-export"]
    assert student["profiles"] == export["profiles"] == ["student"]
    assert student["entrypoint"] == ["vllm", "serve"] and student["command"][0] == "/models/champion"
    assert f"--served-model-name={Settings().inference.model}" in student["command"]
    assert student["depends_on"] == {"student-export": {"condition": "service_completed_successfully"}}
    out = next(a for a in export["command"] if a.startswith("--out="))
    assert out == "--out=/models/champion" and export["command"][0] == "infer-export"
    assert any(a.startswith("--model=models:/") and a.endswith("@champion") for a in export["command"])
    assert {v.split(":")[0] for v in student["volumes"]} == {v.split(":")[0] for v in export["volumes"]}


def test_compose_credentials_come_from_env(compose: dict) -> None:
    text = COMPOSE.read_text()
    example = _env_example()
    referenced = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))  # $${X} is a container-side variable
    assert referenced <= set(example), f"not in .env.example: {sorted(referenced - set(example))}"
    for key in REQUIRED_SECRETS:
        uses = re.findall(r"\$\{" + key + r"(:?[-?]?)", text)
        assert uses, f"{key} is never used"
        assert all(u == ":?" for u in uses), f"{key} must always be required (${{{key}:?...}})"
        assert example[key] == "", f".env.example must not hold a value for {key}"
    for key in OPTIONAL_SECRETS:
        assert example[key] == ""
    # no literal credential anywhere in an environment block
    secretish = re.compile(r"(PASSWORD|SECRET|TOKEN|FERNET|_KEY$|ACCESS_KEY)")
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if secretish.search(key) and not key.endswith(("_FILE", "_USERS", "_ISSUER")) and value not in (None, ""):
                assert "${" in str(value), f"{name}.{key} holds a literal value"
    # the real .env is ignored by git and never tracked
    assert ".env" in ROOT.joinpath(".gitignore").read_text().split()
    tracked = subprocess.run(["git", "ls-files", "--", ".env"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode == 0:
        assert tracked.stdout.strip() == ""


# ----------------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------------

def _pyproject_pin(name: str) -> str:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    for req in reqs:
        m = re.match(rf"^{re.escape(name)}==([\w.]+)$", req)
        if m:
            return m.group(1)
    raise AssertionError(f"{name} is not pinned with == in pyproject.toml")


def _constraint(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(name.lower() + "=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} not in constraints.txt")


def test_airflow_image_matches_the_pins() -> None:
    text = (ROOT / "Dockerfile").read_text()
    airflow = _pyproject_pin("apache-airflow")
    assert f"ARG AIRFLOW_IMAGE=apache/airflow:{airflow}-python3.11" in text
    torch_at = text.index('"torch==${TORCH_VERSION}"')
    package_at = text.index("[airflow]")
    assert torch_at < package_at, "torch (CPU wheels) must be installed before the package"
    assert "download.pytorch.org/whl/cpu" in text
    assert f"ARG TORCH_VERSION={_constraint('torch')}" in text
    assert "-c /opt/conf-profile/constraints.txt" in text
    assert "/opt/airflow/dags" in text and "/opt/airflow/plugins" in text
    values = _load(CHART / "values.yaml")
    assert values["airflow"]["airflowVersion"] == values["airflow"]["defaultAirflowTag"] == airflow
    mlflow = _constraint("mlflow")
    assert f"ghcr.io/mlflow/mlflow:v{mlflow}-full" in COMPOSE.read_text()
    assert values["mlflow"]["image"]["tag"] == f"v{mlflow}-full"


def test_trainer_image() -> None:
    text = (ROOT / "docker" / "trainer.Dockerfile").read_text()
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:12\.\d+\.\d+-\S+-ubuntu\d+\.\d+$", text, re.M)
    assert '"/opt/conf-profile/src[gpu]"' in text
    assert text.index('"torch==${TORCH_VERSION}"') < text.index("[gpu]")
    assert f"ARG TORCH_VERSION={_constraint('torch')}" in text
    assert 'ENTRYPOINT ["conf-profile"]' in text
    assert "USER 1000" in text


def test_dockerignore_keeps_inputs_and_drops_secrets() -> None:
    patterns = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    for must in (".env", ".git", ".venv", "data"):
        assert must in patterns
    for keep in ("pyproject.toml", "constraints.txt", "conf_profile", "dags", "plugins", "README.md"):
        assert keep not in patterns and f"/{keep}" not in patterns


# ----------------------------------------------------------------------------------------------------------
# Helm chart: metadata, values schema, names shared with the Airflow subchart, no secrets
# ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def values() -> dict:
    return _load(CHART / "values.yaml")


@pytest.fixture(scope="module")
def schema() -> dict:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return schema


def _ci_examples() -> list[Path]:
    return sorted((CHART / "ci").glob("*.yaml"))


def test_chart_metadata() -> None:
    chart = _load(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2" and chart["name"] == "conf-profile"
    deps = {d["name"]: d for d in chart["dependencies"]}
    airflow = deps["airflow"]
    assert airflow["repository"] == "https://airflow.apache.org"
    assert re.fullmatch(r"1\.\d+\.\d+", airflow["version"]), "pin the Airflow chart to one exact 1.x version"
    # the switch must not live under `airflow:` (handed to the subchart, whose schema has no `enabled`)
    assert airflow["condition"] == "subcharts.airflow.enabled"
    assert "enabled" not in _load(CHART / "values.yaml")["airflow"]
    assert (CHART / "templates" / "NOTES.txt").is_file() and (CHART / "templates" / "_helpers.tpl").is_file()


@pytest.mark.parametrize("example", [None, *_ci_examples()], ids=lambda p: p.name if p else "values.yaml")
def test_values_validate_against_schema(values: dict, schema: dict, example: Path | None) -> None:
    merged = _merge(values, _load(example)) if example else values
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(merged), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


BROKEN = {
    "unknown compute mode": ({"compute": {"mode": "slurm"}}, "slurm"),
    "gpus as a string": ({"compute": {"gpus": "2"}}, "'2'"),
    "kubernetes mode with no GPU": ({"compute": {"gpus": 0}}, "minimum"),
    "toleration with an int field": (
        {"compute": {"tolerations": [{"key": "a", "operator": "Exists", "tolerationSeconds": 60}]}},
        "tolerationSeconds",
    ),
    "numeric image tag": ({"images": {"trainer": {"tag": 0.1}}}, "0.1"),
    "no object store": ({"minio": {"enabled": False}}, "endpointUrl"),
    "no database host": ({"postgresql": {"enabled": False}}, "host"),
    "credentials in settings": ({"confProfile": {"settings": {"s3": {"access_key": "AKIA"}}}}, "should not be valid"),
    "unknown settings section": ({"confProfile": {"settings": {"trainer": {}}}}, "trainer"),
    "typo at the top": ({"vllmm": {"enabled": True}}, "vllmm"),
    "subchart switch inside airflow:": ({"airflow": {"enabled": False}}, "should not be valid"),
    "bad fernet key": ({"secrets": {"values": {"airflowFernetKey": "short"}}}, "short"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_broken_values_are_rejected(values: dict, schema: dict, case: str) -> None:
    override, needle = BROKEN[case]
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(_merge(values, override)))
    assert errors, f"schema accepted: {case}"
    assert any(needle in str(e.message) or needle in str(list(e.absolute_path)) for e in errors), [
        e.message for e in errors
    ]


@pytest.mark.parametrize("example", [None, *_ci_examples()], ids=lambda p: p.name if p else "values.yaml")
def test_names_shared_with_the_airflow_subchart(values: dict, example: Path | None) -> None:
    v = _merge(values, _load(example)) if example else values
    secret = v["secrets"]["existingSecret"] or v["secrets"]["name"]
    af = v["airflow"]
    assert af["data"]["metadataSecretName"] == secret
    assert af["fernetKeySecretName"] == af["apiSecretKeySecretName"] == af["jwtSecretName"] == secret
    assert {s["secretName"] for s in af["secret"]} == {secret}
    assert {s["envName"] for s in af["secret"]} >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY"}
    [volume] = [vol for vol in af["volumes"] if "configMap" in vol]
    assert volume["configMap"]["name"] == v["confProfile"]["settingsConfigMap"]
    [mount] = [m for m in af["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == v["confProfile"]["mountPath"]
    env = {e["name"]: e["value"] for e in af["env"]}
    assert env["CONF_PROFILE_CONFIG"] == f"{v['confProfile']['mountPath']}/config.yaml"
    assert af["postgresql"]["enabled"] is False and af["executor"] == "LocalExecutor"


@pytest.mark.parametrize("path", [CHART / "values.yaml", *_ci_examples()], ids=lambda p: p.name)
def test_no_secrets_in_committed_values(path: Path) -> None:
    usernames = {"minioRootUser", "s3AccessKey"}
    for key, value in ((_load(path).get("secrets") or {}).get("values") or {}).items():
        if key not in usernames:
            assert value == "", f"{path.name}: secrets.values.{key} must stay empty in git"
    text = path.read_text()
    assert not re.search(r"(?i)(password|secret_key|api_key|token)\s*:\s*[\"']?[A-Za-z0-9+/=_-]{8,}", text), path


# ----------------------------------------------------------------------------------------------------------
# Helm chart: templates, statically (no renderer needed)
# ----------------------------------------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{-?(.*?)-?\}\}", re.S)


def _actions(text: str) -> list[str]:
    out = []
    for raw in _ACTION.findall(text):
        body = raw.strip()
        if body.startswith("/*"):
            assert body.endswith("*/"), f"unterminated comment: {body[:40]}"
            continue
        out.append(body)
    return out


def _templates() -> list[Path]:
    return sorted(p for p in (CHART / "templates").iterdir() if p.is_file())


def test_templates_are_balanced_and_reference_only_known_names(values: dict) -> None:
    defined: set[str] = set()
    for path in _templates():
        defined |= set(re.findall(r'\{\{-?\s*define\s+"([^"]+)"', path.read_text()))
    assert "conf-profile.settings" in defined
    for path in _templates():
        text = path.read_text()
        assert "\t" not in text, f"{path.name}: tabs"
        assert text.count("{{") == text.count("}}"), f"{path.name}: unbalanced braces"
        stack: list[str] = []
        for body in _actions(text):
            word = body.split()[0] if body.split() else ""
            if word in ("if", "range", "with", "define", "block"):
                stack.append(word)
            elif word == "else":
                assert stack and stack[-1] in ("if", "range", "with"), f"{path.name}: stray else"
            elif word == "end":
                assert stack, f"{path.name}: stray end"
                stack.pop()
        assert not stack, f"{path.name}: unclosed {stack}"
        for name in re.findall(r'(?:include|template)\s+"([^"]+)"', text):
            assert name in defined, f"{path.name}: include of undefined {name!r}"
        for ref in re.findall(r"\$?\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text):
            node: Any = values
            for part in ref.strip(".").split("."):
                assert isinstance(node, dict) and part in node, f"{path.name}: .Values{ref} is not in values.yaml"
                node = node[part]


# ----------------------------------------------------------------------------------------------------------
# Helm chart: rendered by the real Helm engine, manifests validated (tools from install-deploy-tools.sh)
# ----------------------------------------------------------------------------------------------------------

K8S_VERSION = "1.33.0"

_DRIVER = textwrap.dedent(
    r'''
    import asyncio, json, os, re, sys, tempfile
    import helm_sdkpy, kubernetes_validate, yaml

    jobs = json.loads(sys.argv[1])
    log = tempfile.TemporaryFile(mode="w+b")
    saved = os.dup(2)
    os.dup2(log.fileno(), 2)  # the Helm engine logs lint-mode `fail`/`required` messages to stderr
    lint = {}
    try:
        config = helm_sdkpy.Configuration(namespace="conf-profile")
        for job in jobs:
            result = asyncio.run(helm_sdkpy.Lint(config).run(job["chart"]))
            lint[job["id"]] = [[m["Severity"], m["Path"]] for m in result.get("Messages") or []]
    finally:
        os.dup2(saved, 2)
    log.seek(0)
    text = log.read().decode("utf-8", "replace")

    ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"', "'": "'"}
    def unquote(s):
        def rep(m):
            e = m.group(1)
            return chr(int(e[1:], 16)) if e[0] in "xuU" else ESC[e]
        return re.sub(r'\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[abfnrtv\\"\'])', rep, s)

    messages = [unquote(m) for m in re.findall(r'message="((?:[^"\\]|\\.)*)"', text)]
    out = {}
    for job in jobs:
        marker = "@@RENDER:" + job["id"] + "@@"
        rendered = [m for m in messages if m.startswith(marker)]
        docs, invalid = [], []
        if rendered:
            for doc in yaml.safe_load_all(rendered[0][len(marker):]):
                if not doc:
                    continue
                docs.append(doc)
                try:
                    kubernetes_validate.validate(doc, job["k8s"], strict=True)
                except Exception as exc:  # noqa: BLE001 - report every schema error
                    invalid.append(f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {str(exc).splitlines()[0]}")
        out[job["id"]] = {"lint": lint[job["id"]], "manifests": docs, "invalid": invalid, "rendered": bool(rendered)}
    out["_other_messages"] = [m for m in messages if not m.startswith("@@RENDER:")]
    print(json.dumps(out))
    '''
)


def _tools_python() -> Path:
    py = TOOLS_VENV / "bin" / "python"
    if not py.exists():
        _missing_tool(f"no Helm engine (helm-sdkpy) in {TOOLS_VENV}")
    probe = subprocess.run([str(py), "-c", "import helm_sdkpy, kubernetes_validate"], capture_output=True)
    if probe.returncode != 0:
        _missing_tool(f"helm-sdkpy / kubernetes-validate not importable from {py}")
    return py


def _chart_copy(tmp: Path, case: str, values: dict, extra_templates: dict[str, str] | None = None) -> Path:
    """A copy of the chart with `values` as its values.yaml and a template that renders all the others."""
    dest = tmp / case
    shutil.copytree(CHART, dest, ignore=shutil.ignore_patterns("ci", "charts"))
    (dest / "values.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    files = sorted(p.name for p in (CHART / "templates").glob("*.yaml"))
    names = " ".join(f'"{f}"' for f in files)
    (dest / "templates" / "zz-render.yaml").write_text(
        "{{- $docs := list }}\n"
        f"{{{{- range $f := list {names} }}}}\n"
        '{{- $docs = append $docs (include (print $.Template.BasePath "/" $f) $) }}\n'
        "{{- end }}\n"
        f'{{{{- fail (printf "@@RENDER:{case}@@%s" (join "\\n---\\n" $docs)) }}}}\n'
    )
    for name, body in (extra_templates or {}).items():
        (dest / "templates" / name).write_text(body)
    return dest


def _render(tmp: Path, cases: dict[str, dict], extra: dict[str, dict[str, str]] | None = None) -> dict:
    py = _tools_python()
    jobs = [
        {"id": case, "chart": str(_chart_copy(tmp, case, vals, (extra or {}).get(case))), "k8s": K8S_VERSION}
        for case, vals in cases.items()
    ]
    proc = subprocess.run([str(py), "-c", _DRIVER, json.dumps(jobs)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _errors(lint: list) -> list:
    return [m for m in lint if m[0] >= 3]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, values: dict) -> dict:
    cases = {"defaults": values}
    for example in _ci_examples():
        cases[example.stem] = _merge(values, _load(example))
    cases["everything-on"] = _merge(values, {"vllm": {"enabled": True}, "studentServer": {"enabled": True},
                                             "compute": {"namespace": "ml"}})
    result = _render(tmp_path_factory.mktemp("charts"), cases)
    return {"cases": cases, **result}


def test_chart_lints_and_renders(rendered: dict) -> None:
    assert rendered["_other_messages"] == [], f"fail/required fired while rendering: {rendered['_other_messages']}"
    for case in rendered["cases"]:
        out = rendered[case]
        assert not _errors(out["lint"]), f"{case}: helm lint errors at {_errors(out['lint'])}"
        assert out["rendered"] and out["manifests"], f"{case}: nothing rendered"
        assert out["invalid"] == [], f"{case}: manifests invalid for Kubernetes {K8S_VERSION}: {out['invalid']}"


def _by_kind(manifests: list[dict]) -> dict[tuple[str, str], dict]:
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def _pod_specs(manifests: list[dict]) -> list[tuple[str, dict]]:
    return [(m["metadata"]["name"], m["spec"]["template"]["spec"]) for m in manifests
            if m["kind"] in ("Deployment", "StatefulSet", "Job")]


def test_rendered_components_follow_the_values(rendered: dict) -> None:
    for case, vals in rendered["cases"].items():
        kinds = _by_kind(rendered[case]["manifests"])
        names = {name for _, name in kinds}
        secret = vals["secrets"]["existingSecret"] or vals["secrets"]["name"]
        assert (("Secret", secret) in kinds) == (not vals["secrets"]["existingSecret"]), case
        assert ("ConfigMap", vals["confProfile"]["settingsConfigMap"]) in kinds
        for component in ("postgresql", "minio", "mlflow", "vllm"):
            assert any(n.endswith(f"-{component}") for n in names) == vals[component]["enabled"], (case, component)
        # every credential is read from the one Secret; every long-running pod has probes
        for name, spec in _pod_specs(rendered[case]["manifests"]):
            for container in spec.get("initContainers", []) + spec["containers"]:
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["name"] == secret, (case, name, env["name"])
                is_job = name.endswith(("bucket-init", "airflow-pools"))
                if not is_job and container in spec["containers"]:
                    assert "readinessProbe" in container and "livenessProbe" in container, (case, name)
        job = kinds.get(("Job", "test-release-bucket-init"))
        assert job and "post-install" in job["metadata"]["annotations"]["helm.sh/hook"], case
        pools = kinds.get(("Job", "test-release-airflow-pools"))
        assert (pools is not None) == vals["subcharts"]["airflow"]["enabled"], case
        if pools:
            assert "pools set conf_profile_promote 1" in pools["spec"]["template"]["spec"]["containers"][0]["args"][0]


def test_rendered_vllm_runs_on_gpu_nodes(rendered: dict) -> None:
    for case in ("gpu-values", "everything-on"):
        vals = rendered["cases"][case]
        deploy = _by_kind(rendered[case]["manifests"])[("Deployment", "test-release-vllm")]
        spec = deploy["spec"]["template"]["spec"]
        [container] = spec["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == vals["vllm"]["gpus"]
        assert spec["nodeSelector"] == (vals["vllm"]["nodeSelector"] or vals["compute"]["nodeSelector"])
        assert spec["tolerations"] == (vals["vllm"]["tolerations"] or vals["compute"]["tolerations"])
        assert container["command"] == ["vllm", "serve"] and container["args"][0] == vals["vllm"]["model"]
        assert f"--served-model-name={vals['vllm']['servedModelName']}" in container["args"]


def test_rendered_student_server(rendered: dict) -> None:
    """studentServer: off by default; on, an init container exports the champion and vLLM serves that folder,
    and the settings point inference.base_url at it."""
    for case, vals in rendered["cases"].items():
        kinds = _by_kind(rendered[case]["manifests"])
        deploy = kinds.get(("Deployment", "test-release-vllm-student"))
        assert (deploy is not None) == vals["studentServer"]["enabled"], case
        if deploy is None:
            continue
        spec = deploy["spec"]["template"]["spec"]
        [init], [container] = spec["initContainers"], spec["containers"]
        assert init["command"] == ["python", "-m", "conf_profile.cli"] and init["args"][0] == "infer-export"
        assert "--model=models:/conf-profile-student@champion" in init["args"] and "--out=/models/champion" in init["args"]
        assert container["command"] == ["vllm", "serve"] and container["args"][0] == "/models/champion"
        assert f"--served-model-name={vals['studentServer']['servedModelName']}" in container["args"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == vals["studentServer"]["gpus"]
        assert ("Service", "test-release-vllm-student") in kinds


def test_rendered_settings_load_into_conf_profile(rendered: dict, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap the DAGs read is a valid conf-profile settings file with the cluster's endpoints."""
    from conf_profile.config import Settings

    for key in list(os.environ):
        if key.startswith("CONF_PROFILE_"):
            monkeypatch.delenv(key)
    for case, vals in rendered["cases"].items():
        cm = _by_kind(rendered[case]["manifests"])[("ConfigMap", vals["confProfile"]["settingsConfigMap"])]
        path = tmp_path / f"{case}.yaml"
        path.write_text(cm["data"]["config.yaml"])
        s = Settings.load(path)
        assert s.compute.mode == vals["compute"]["mode"]
        assert s.compute.gpus == vals["compute"]["gpus"]
        assert s.compute.node_selector == vals["compute"]["nodeSelector"]
        assert s.compute.tolerations == vals["compute"]["tolerations"]
        assert s.compute.trainer_image == f"{vals['images']['trainer']['repository']}:{vals['images']['trainer']['tag']}"
        assert s.compute.namespace == vals["compute"]["namespace"]  # "" renders as the release namespace
        assert s.lake == f"s3://{vals['s3']['buckets']['lake']}/{vals['confProfile']['lakePrefix']}"
        assert s.mlflow.tracking_uri and s.mlflow.tracking_uri.startswith("http")
        expected_s3 = vals["s3"]["endpointUrl"] or "http://test-release-minio:9000"
        assert s.s3.endpoint_url == expected_s3
        expected_vllm = vals["vllm"]["baseUrl"] or ("http://test-release-vllm:8000/v1" if vals["vllm"]["enabled"] else None)
        assert s.compute.vllm_base_url == expected_vllm
        assert s.s3.access_key is None and s.s3.secret_key is None
        expected_student = "http://test-release-vllm-student:8000/v1" if vals["studentServer"]["enabled"] else None
        assert s.inference.base_url == expected_student
    teachers = Settings.load(tmp_path / "gpu-values.yaml").labels.teachers
    assert [t.name for t in teachers] == ["lexicon_all", "vllm_teacher"]


def test_renderer_catches_broken_charts(tmp_path: Path, values: dict) -> None:
    """The lint/render path is live: a bad include, invalid output and bad values all fail it."""
    cases = {
        "bad-include": values,
        "bad-manifest": values,
        "bad-values": _merge(values, {"compute": {"mode": "slurm"}}),
    }
    extra = {
        "bad-include": {"broken.yaml": '{{ include "conf-profile.nope" . }}\n'},
        "bad-manifest": {"broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: [1\n"},
    }
    out = _render(tmp_path, cases, extra)
    assert _errors(out["bad-include"]["lint"]), "an undefined include passed lint"
    assert _errors(out["bad-manifest"]["lint"]), "invalid YAML output passed lint"
    assert ["values.yaml"] == [m[1] for m in _errors(out["bad-values"]["lint"]) if m[1] == "values.yaml"], (
        "values outside the schema passed lint"
    )
