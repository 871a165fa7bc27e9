#!/usr/bin/env bash
# Installs PostgreSQL for tests/real_services/ (and the bare-metal recipe of docs/deployment.md): Debian's
# `postgresql` package (15 on bookworm; binaries in /usr/lib/postgresql/<major>/bin, not on PATH). Idempotent,
# and a no-op taking well under a second when initdb is there.
#
# PostgreSQL refuses to run as root; the package creates the `postgres` system user the tests run it as
# (runuser). The package's own cluster is not used: tests initdb a temporary one on a free 127.0.0.1 port.
# Exits non-zero, naming what failed, when it cannot be installed.
set -uo pipefail

say() { printf 'install-postgres: %s\n' "$*"; }

have_initdb() {
    command -v initdb >/dev/null 2>&1 && return 0
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null 2>&1
}

if have_initdb && { [ "$(id -u)" -ne 0 ] || getent passwd postgres >/dev/null; }; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        say "PostgreSQL missing and not root (no sudo): run 'apt-get install -y postgresql' as root"
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "PostgreSQL missing and no apt-get: install PostgreSQL >= 13 (initdb, pg_ctl) with your package manager"
    exit 1
fi

say "installing Debian's postgresql"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1; then
    $SUDO apt-get update -qq >/dev/null 2>&1
    if ! $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1; then
        say "FAILED: apt-get install postgresql"
        exit 1
    fi
fi
if [ "$(id -u)" -eq 0 ] && ! getent passwd postgres >/dev/null; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres || { say "FAILED: useradd postgres"; exit 1; }
fi
have_initdb || { say "FAILED: initdb still missing after the install"; exit 1; }
exit 0
