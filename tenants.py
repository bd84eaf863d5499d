"""Tenants: who a request, a CLI run or a connector acts for, and which API keys belong to whom.

A tenant is a name (`acme`). Everything a tenant indexes — documents, their points, parses,
page images, uploads, jobs — is its own: another tenant never sees it, and its ids answer 404
exactly as unknown ones do. `default` is the tenant of everything indexed before tenants
existed, of `SCANRAG_API_KEY`, and of a server or CLI run that names no other.

Keys come from `SCANRAG_API_KEYS="acme:KEY1,globex:KEY2,acme:KEY3"`, a `[api_keys]` table in
scanrag.toml, and a keys file (one `tenant:key` per line); a tenant may hold several keys
(rotation). A key is checked against every known key in constant time (SHA-256 digests
compared with `hmac.compare_digest`, each one, whichever matches), so neither which key
matched nor a key's length shows in the time an answer takes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

#: The tenant of documents indexed before tenants existed, of SCANRAG_API_KEY, and of
#: anything that names no tenant.
DEFAULT = "default"
#: Tenant names go into paths and payloads: lower-case letters, digits, `-` and `_`.
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def check_name(name: str) -> str:
    """The name, when it can name a tenant; else ValueError saying what a name may be."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a tenant name: use 1-64 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def check_key(key: str) -> str:
    """HTTP headers carry bytes, and browsers send only Latin-1: a key with other characters
    (or spaces around it) could never be presented."""
    if not (key and key.isascii() and key.isprintable() and key == key.strip()):
        raise ValueError("an API key must be printable ASCII, without spaces around it")
    return key


def parse_keys(spec: str, where: str = "SCANRAG_API_KEYS") -> dict[str, list[str]]:
    """`acme:KEY1,globex:KEY2,acme:KEY3` (commas or new lines between pairs) → keys by tenant."""
    keys: dict[str, list[str]] = {}
    for number, item in enumerate(re.split(r"[,\n]", spec), start=1):
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        tenant, sep, key = item.partition(":")
        if not sep:
            raise ValueError(f"{where}: entry {number} is not 'tenant:key'")
        try:
            keys.setdefault(check_name(tenant.strip()), []).append(check_key(key.strip()))
        except ValueError as exc:
            raise ValueError(f"{where}: entry {number}: {exc}") from None
    return keys


def read_keys_file(path: Path) -> dict[str, list[str]]:
    """A keys file: one `tenant:key` per line; blank lines and `#` comments are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the API keys file {path}: {exc}") from None
    keys: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.strip().startswith("#"):
            for tenant, more in parse_keys(line, f"{path}, line {number}").items():
                keys.setdefault(tenant, []).extend(more)
    return keys


class KeyRing:
    """Every API key and its tenant; `tenant_of` says whose a presented key is."""

    def __init__(self, keys: Mapping[str, Iterable[str]]) -> None:
        owners: dict[str, str] = {}
        for tenant, held in keys.items():
            for key in held:
                other = owners.setdefault(key, tenant)
                if other != tenant:
                    raise ValueError(f"one API key is given to two tenants, {other} and {tenant}")
        self._digests = [(_digest(key), tenant) for key, tenant in owners.items()]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def tenant_of(self, presented: str | None) -> str | None:
        """The tenant whose key this is, or None. Compares with every key, always."""
        digest = _digest(presented or "")
        found = None
        for known, tenant in self._digests:
            if hmac.compare_digest(digest, known):
                found = tenant
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
