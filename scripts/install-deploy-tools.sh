#!/usr/bin/env bash
# Installs what tests/test_deploy.py uses to check the deployment files, from the registries this project may
# use (Debian, PyPI). Idempotent, and a no-op taking well under a second when everything is there.
#
#   1. a Compose implementation, for `docker compose config` / `docker-compose config`:
#      an existing `docker compose` plugin, else Debian's `docker-compose` package (apt-get);
#   2. the Helm v4 engine, for `helm lint` of helm/conf-profile: there is no Helm binary in Debian or on
#      PyPI/npm, but PyPI's `helm-sdkpy` ships the Helm Go libraries as a shared object with Python bindings.
#      It needs Python >= 3.12, so it gets its own venv ($DEPLOY_TOOLS_VENV, default .venv/deploy-tools);
#   3. kubernetes-validate (PyPI, ships the Kubernetes OpenAPI schemas) in the same venv, to validate the
#      rendered manifests.
#
# Exits non-zero, naming what failed, when a tool cannot be installed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DEPLOY_TOOLS_VENV:-$ROOT/.venv/deploy-tools}"
HELM_SDKPY_VERSION="${HELM_SDKPY_VERSION:-0.1.32}"
KUBERNETES_VALIDATE_VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
failed=()

say() { printf 'install-deploy-tools: %s\n' "$*"; }

# --- 1. Compose ---------------------------------------------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
    :
elif command -v docker-compose >/dev/null 2>&1; then
    :
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    fi
    if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
        say "docker-compose missing and not root (no sudo): run 'apt-get install -y docker-compose' as root"
        failed+=("docker-compose")
    else
        say "installing Debian's docker-compose"
        export DEBIAN_FRONTEND=noninteractive
        if ! $SUDO apt-get install -y -qq docker-compose >/dev/null 2>&1; then
            $SUDO apt-get update -qq >/dev/null 2>&1
            $SUDO apt-get install -y -qq docker-compose >/dev/null 2>&1 || failed+=("docker-compose (apt-get)")
        fi
    fi
fi

# --- 2+3. helm-sdkpy (Helm v4 engine) and kubernetes-validate ---------------------------------------------------
helm_ok() {
    [ -x "$VENV/bin/python" ] \
        && "$VENV/bin/python" - "$HELM_SDKPY_VERSION" "$KUBERNETES_VALIDATE_VERSION" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
assert version("helm-sdkpy") == sys.argv[1]
assert version("kubernetes-validate") == sys.argv[2]
import helm_sdkpy  # noqa: F401  (loads the shared object)
import kubernetes_validate  # noqa: F401
PY
}

find_python312() {
    local c v
    for c in python3.14 python3.13 python3.12 python3; do
        if command -v "$c" >/dev/null 2>&1 \
            && "$c" -c 'import sys, venv; assert sys.version_info >= (3, 12)' >/dev/null 2>&1; then
            command -v "$c"; return 0
        fi
    done
    # pyenv installs that are not on PATH
    for v in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3; do
        if [ -x "$v" ] && "$v" -c 'import sys, venv; assert sys.version_info >= (3, 12)' >/dev/null 2>&1; then
            echo "$v"; return 0
        fi
    done
    return 1
}

if ! helm_ok; then
    if PY312="$(find_python312)"; then
        say "installing helm-sdkpy==$HELM_SDKPY_VERSION, kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $VENV"
        rm -rf "$VENV"
        if "$PY312" -m venv "$VENV" \
            && "$VENV/bin/pip" install -q --disable-pip-version-check "helm-sdkpy==$HELM_SDKPY_VERSION" \
                "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
                2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2) \
            && helm_ok; then
            :
        else
            failed+=("helm-sdkpy/kubernetes-validate (pip)")
        fi
    else
        say "no Python >= 3.12 found (helm-sdkpy needs one)"
        failed+=("helm-sdkpy (Python >= 3.12)")
    fi
fi

if [ ${#failed[@]} -gt 0 ]; then
    say "FAILED: ${failed[*]}"
    exit 1
fi
exit 0
