"""Secrets stay out of config files and out of what we print.

Why a module of its own: both the config loader (refuses a file that holds credentials) and every place that
prints a URI (doctor, run summaries, error messages) need the same two rules: which keys name a credential,
and how a password hides in a URL's userinfo (`http://user:pass@host`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

SECRET_KEYS = {"access_key", "secret_key", "aws_access_key_id", "aws_secret_access_key", "password", "api_key",
               "token", "secret"}


def url_has_userinfo(value: str) -> bool:
    """True for `scheme://user[:password]@host...` (credentials inside a URL)."""
    if "://" not in value or "@" not in value:
        return False
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return bool(parts.netloc) and "@" in parts.netloc


def redact_url(value: str | None) -> str:
    """`http://user:pass@host/x` -> `http://***@host/x`; anything else unchanged."""
    if not value or not url_has_userinfo(value):
        return value or ""
    parts = urlsplit(value.strip())
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def find_secrets(data: Any, prefix: str = "") -> list[str]:
    """Paths (e.g. `labels.teachers[1].api_key`, `mlflow.tracking_uri`) of credentials anywhere in a parsed
    config: a credential key with a value, in mappings and lists, or a URL with userinfo in any string.
    Only paths are returned, never the values, so an error message cannot echo the secret."""
    found: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if str(k).lower() in SECRET_KEYS and v not in (None, "") and not isinstance(v, dict | list):
                found.append(name)
            else:
                found.extend(find_secrets(v, name))
    elif isinstance(data, list | tuple):
        for i, v in enumerate(data):
            found.extend(find_secrets(v, f"{prefix}[{i}]"))
    elif isinstance(data, str) and url_has_userinfo(data):
        found.append(f"{prefix} (credentials in the URL)")
    return found
