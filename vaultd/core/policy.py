"""Access policy: which identity may perform which verb on which vaults. Default deny.

The policy file is TOML, a list of rules::

    [[rule]]
    identity = "service:permits"        # kind ":" name ; "*" matches any name of that kind
    vaults = ["citizen-*", "permits"]   # fnmatch patterns; "{self}" = the citizen's own vault
    verbs = ["create", "deposit", "read", "stat", "list", "count", "check", "destroy",
             "retention", "hold", "journal"]

    [[rule]]
    identity = "citizen:*"
    vaults = ["{self}"]
    verbs = ["read", "stat", "list", "count", "check"]

    [[rule]]
    identity = "operator:*"
    verbs = ["admin"]

A rule without ``vaults`` grants its verbs only for operations that concern no single vault (key
rotation, backup, whole-store check). ``{self}`` matches only for citizen identities, and only the
vault ``citizen_vault_id(identity.name)``.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaultd.errors import InvalidArgument, PermissionDenied
from vaultd.types import Identity

__all__ = [
    "VERBS",
    "KINDS",
    "VAULT_ID_RE",
    "Rule",
    "Policy",
    "citizen_vault_id",
    "validate_vault_id",
]

VERBS = frozenset(
    {
        "create",
        "deposit",
        "read",
        "stat",
        "list",
        "count",
        "check",
        "destroy",
        "retention",
        "hold",
        "journal",
        "sign",
        "admin",
    }
)
KINDS = frozenset({"service", "citizen", "operator"})
VAULT_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_CITIZEN_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,119}")
_SELF = "{self}"


def validate_vault_id(vault: str) -> str:
    """Return ``vault`` if it is a valid vault id, else raise InvalidArgument."""
    if not isinstance(vault, str) or VAULT_ID_RE.fullmatch(vault) is None:
        raise InvalidArgument(
            f"invalid vault id {vault!r}: use 1 to 128 characters of a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return vault


def citizen_vault_id(name: str) -> str:
    """The vault id of the citizen ``name``: ``citizen-<name>`` after normalisation.

    Normalisation is NFKC, surrounding space stripped, lower case. It never rewrites characters
    (two different citizens must never share a vault), so a name that is still not a valid id
    fragment is refused with InvalidArgument.
    """
    norm = unicodedata.normalize("NFKC", name).strip().lower()
    if _CITIZEN_NAME_RE.fullmatch(norm) is None:
        raise InvalidArgument(
            f"citizen name {name!r} cannot name a vault: use 1 to 120 characters of a-z 0-9 . _ -"
        )
    return "citizen-" + norm


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    name: str  # "*" for any
    vaults: tuple[str, ...] | None  # None: only operations on no single vault
    verbs: frozenset[str]

    def matches(self, identity: Identity, verb: str, vault: str | None) -> bool:
        if identity.kind != self.kind:
            return False
        if self.name != "*" and identity.name != self.name:
            return False
        if verb not in self.verbs:
            return False
        if vault is None:
            return self.vaults is None
        if self.vaults is None:
            return False
        for pattern in self.vaults:
            if pattern == _SELF:
                if identity.kind != "citizen":
                    continue
                try:
                    if citizen_vault_id(identity.name) == vault:
                        return True
                except InvalidArgument:
                    continue
            elif fnmatch.fnmatchcase(vault, pattern):
                return True
        return False


class Policy:
    """An immutable list of rules; ``check`` raises PermissionDenied unless one rule allows."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._rules = tuple(rules)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        p = Path(path)
        try:
            with p.open("rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise InvalidArgument(f"policy file {p} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise InvalidArgument(f"policy file {p} is not valid TOML: {e}") from None
        return cls.from_dict(data, source=str(p))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "policy") -> Policy:
        unknown = set(d) - {"rule"}
        if unknown:
            raise InvalidArgument(f"{source}: unknown top-level keys {sorted(unknown)}; expected [[rule]]")
        raw_rules = d.get("rule", [])
        if not isinstance(raw_rules, list):
            raise InvalidArgument(f"{source}: 'rule' must be an array of tables ([[rule]])")
        rules = [_parse_rule(r, f"{source}: rule {i + 1}") for i, r in enumerate(raw_rules)]
        return cls(rules)

    def allows(self, identity: Identity, verb: str, vault: str | None) -> bool:
        return any(r.matches(identity, verb, vault) for r in self._rules)

    def check(self, identity: Identity, verb: str, vault: str | None) -> None:
        """Raise PermissionDenied unless a rule lets ``identity`` do ``verb`` on ``vault``.

        ``vault`` is None for operations on the whole store (verb "admin").
        """
        if verb not in VERBS:
            raise InvalidArgument(f"unknown verb {verb!r}")
        if not self.allows(identity, verb, vault):
            where = f"vault {vault!r}" if vault is not None else "the whole store"
            raise PermissionDenied(f"{identity} may not {verb} on {where} (no policy rule allows it)")


def _parse_rule(r: Any, where: str) -> Rule:
    if not isinstance(r, Mapping):
        raise InvalidArgument(f"{where}: must be a table")
    unknown = set(r) - {"identity", "vaults", "verbs"}
    if unknown:
        raise InvalidArgument(f"{where}: unknown keys {sorted(unknown)}")
    ident = r.get("identity")
    if not isinstance(ident, str) or ":" not in ident:
        raise InvalidArgument(f"{where}: identity must be 'kind:name', e.g. 'service:permits'")
    kind, _, name = ident.partition(":")
    if kind not in KINDS:
        raise InvalidArgument(f"{where}: identity kind {kind!r} is not one of {sorted(KINDS)}")
    if not name:
        raise InvalidArgument(f"{where}: identity name is empty (use '*' for any)")
    verbs = r.get("verbs")
    if not isinstance(verbs, list) or not verbs or not all(isinstance(v, str) for v in verbs):
        raise InvalidArgument(f"{where}: verbs must be a non-empty list of strings")
    bad = set(verbs) - VERBS
    if bad:
        raise InvalidArgument(f"{where}: unknown verbs {sorted(bad)}; known: {sorted(VERBS)}")
    vaults = r.get("vaults")
    if vaults is not None:
        if not isinstance(vaults, list) or not all(isinstance(v, str) and v for v in vaults):
            raise InvalidArgument(f"{where}: vaults must be a list of non-empty patterns")
        vaults = tuple(vaults)
    return Rule(kind=kind, name=name, vaults=vaults, verbs=frozenset(verbs))
