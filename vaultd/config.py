"""The daemon's configuration: defaults, then a TOML file, then ``VAULTD_*`` environment variables,
then command-line flags (each later source wins).

Defaults are the safe ones: mutual TLS required, listening on loopback only (127.0.0.1:7443),
metrics on loopback only. The TOML file holds the field names below at top level::

    listen = "127.0.0.1:7443"
    data_dir = "/var/lib/vaultd"
    metrics_listen = "127.0.0.1:9464"
    tls_cert = "/etc/vaultd/server.pem"
    tls_key = "/etc/vaultd/server-key.pem"
    client_ca = "/etc/vaultd/clients-ca.pem"
    policy = "/etc/vaultd/policy.toml"
    key_provider = "file"            # or "pkcs11"
    map_size = 68719476736           # LMDB map, bytes (address space, not disk)
    max_map_size = 0                 # grow the map up to this when it is full; 0: never grow
    citizen_ca = "/etc/vaultd/citizen-ca.pem"        # kiosks: the citizen-card CA
    citizen_crls = ["/var/lib/vaultd/citizen-ca.crl"]  # its revocation lists
    session_secret = "/var/lib/vaultd/session.key"
    journal_origin = "vaultd/city.example"
    scrub_interval = 86400.0         # seconds between scheduled scrubs; 0: no scheduled scrub
    scrub_bytes_per_second = 67108864  # scrub pace; 0: no limit
    scrub_busy_share = 0.02          # while calls are served, the scrub works at most this share of the time
    key_max_age_days = 365.0         # rotate the master key at least this often (drives an alert)

The environment variable of a field is ``VAULTD_`` + its name in capitals (``VAULTD_LISTEN``,
``VAULTD_DATA_DIR``, ``VAULTD_MAP_SIZE``...); a list (``VAULTD_CITIZEN_CRLS``) is comma-separated.
Secrets (a keyring passphrase, a token PIN) are never
configuration values: the configuration names the environment variable that holds them.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vaultd.errors import InvalidArgument

__all__ = ["Config", "load_config", "DEFAULT_LISTEN", "DEFAULT_METRICS_LISTEN", "ENV_PREFIX"]

DEFAULT_LISTEN = "127.0.0.1:7443"
DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"
ENV_PREFIX = "VAULTD_"


@dataclass
class Config:
    data_dir: Path = field(default_factory=lambda: Path("data"),
                           metadata={"help": "the data folder: LMDB store, keyring, journal, dev PKI"})
    listen: str = field(default=DEFAULT_LISTEN, metadata={"help": "gRPC address, host:port"})
    metrics_listen: str = field(default=DEFAULT_METRICS_LISTEN,
                                metadata={"help": "Prometheus HTTP address, host:port; empty: off"})
    tls_cert: Path | None = field(default=None, metadata={"help": "server certificate (PEM)"})
    tls_key: Path | None = field(default=None, metadata={"help": "server private key (PEM)"})
    client_ca: Path | None = field(default=None,
                                   metadata={"help": "CA certificate(s) trusted for client certificates"})
    require_client_cert: bool = field(
        default=True,
        metadata={"help": "require a client certificate (mutual TLS); off: none is requested, so "
                  "only session tokens can identify callers"})
    policy: Path | None = field(default=None,
                                metadata={"help": "policy file (TOML); default <data-dir>/policy.toml"})
    key_provider: str = field(default="file", metadata={"help": "master key provider: file or pkcs11"})
    keyring: Path | None = field(default=None,
                                 metadata={"help": "keyring file; default <data-dir>/keyring.json"})
    keyring_passphrase_env: str = field(
        default="VAULTD_KEYRING_PASSPHRASE",
        metadata={"help": "environment variable holding the keyring passphrase (if any)"})
    pkcs11_module: str = field(default="", metadata={"help": "PKCS#11 module path (pkcs11 provider)"})
    pkcs11_token: str = field(default="", metadata={"help": "PKCS#11 token label"})
    pkcs11_pin_env: str = field(default="VAULTD_PKCS11_PIN",
                                metadata={"help": "environment variable holding the token PIN"})
    map_size: int = field(default=64 << 30, metadata={"help": "LMDB map size, bytes"})
    max_map_size: int = field(
        default=0,
        metadata={"help": "when the LMDB map is full, grow it (doubling, reads paused meanwhile) up to "
                  "this many bytes; 0: never grow, deposits then fail with RESOURCE_EXHAUSTED"})
    max_object_size: int = field(default=4 << 30, metadata={"help": "largest object, bytes"})
    workers: int = field(default=128, metadata={"help": "calls served at once (thread pool)"})
    max_calls_per_identity: int = field(
        default=96, metadata={"help": "calls one identity may have in flight (of workers)"})
    max_concurrent_streams: int = field(default=64,
                                        metadata={"help": "HTTP/2 streams per client connection"})
    grace_period: float = field(default=10.0,
                                metadata={"help": "seconds calls in flight get to finish on shutdown"})
    log_level: str = field(default="info", metadata={"help": "debug, info, warning or error"})
    dev: bool = field(default=False,
                      metadata={"help": "make a development PKI, keyring and policy on first run"})
    citizen_ca: Path | None = field(
        default=None,
        metadata={"help": "citizen-card CA certificate(s) (PEM) for kiosk logins and signatures; unset: no "
                  "kiosks are served (with --dev: a development citizen-card CA in <data-dir>/citizen-ca)"})
    citizen_crls: list[Path] = field(
        default_factory=list,
        metadata={"help": "revocation lists of the citizen-card CA (PEM or DER), read again when they "
                  "change; a list in TOML, comma-separated in the environment, the flag repeated"})
    session_secret: Path | None = field(
        default=None,
        metadata={"help": "file of 32 random bytes keying the kiosk session tokens (made mode 0600 on first "
                  "run); default <data-dir>/session.key"})
    scrub_interval: float = field(
        default=86400.0,
        metadata={"help": "seconds between the starts of two scheduled scrubs (Check over every object "
                  "version); the first starts after min(interval, 600 s); 0: no scheduled scrub"})
    scrub_bytes_per_second: float = field(
        default=float(64 << 20),
        metadata={"help": "pace of the scheduled scrub, bytes checked per second; 0: no limit"})
    scrub_busy_share: float = field(
        default=0.02,
        metadata={"help": "while the daemon serves calls (one in flight, or one ended less than a second "
                  "ago), the scrub works at most this share of the time, in (0, 1]; 1: it never gives way"})
    key_max_age_days: float = field(
        default=365.0,
        metadata={"help": "the longest a master key version should stay current, in days: the metric "
                  "vaultd_key_expiry_timestamp_seconds{role=\"kek\"} is its start plus this, and an alert "
                  "fires 14 days before; 0: no deadline"})
    journal_origin: str = field(
        default="",
        metadata={"help": "the journal's name (checkpoint origin and signing key name), fixed on first "
                  "run; default vaultd/<host name>"})

    # -- derived paths --------------------------------------------------------------------------

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    def resolved(self) -> Config:
        """A copy with the paths that default to the data folder filled in."""
        c = dataclasses.replace(self)
        if c.dev:
            c.tls_cert = c.tls_cert or c.pki_dir / "server.pem"
            c.tls_key = c.tls_key or c.pki_dir / "server-key.pem"
            c.client_ca = c.client_ca or c.pki_dir / "ca.pem"
        c.policy = c.policy or c.data_dir / "policy.toml"
        c.keyring = c.keyring or c.data_dir / "keyring.json"
        c.session_secret = c.session_secret or c.data_dir / "session.key"
        c.citizen_crls = list(c.citizen_crls)
        return c

    def validate(self) -> None:
        if self.key_provider not in ("file", "pkcs11"):
            raise InvalidArgument(f"key_provider must be 'file' or 'pkcs11', not {self.key_provider!r}")
        for name in ("tls_cert", "tls_key", "client_ca"):
            if getattr(self, name) is None:
                raise InvalidArgument(
                    f"{name} is not set: give the server's TLS files (--{name.replace('_', '-')} or "
                    f"{ENV_PREFIX}{name.upper()}), or use --dev for a development PKI")
        if self.key_provider == "pkcs11" and not (self.pkcs11_module and self.pkcs11_token):
            raise InvalidArgument("the pkcs11 key provider needs pkcs11_module and pkcs11_token")
        for name in ("map_size", "max_object_size", "workers", "max_concurrent_streams",
                     "max_calls_per_identity"):
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"{name} must be positive")
        if self.max_map_size < 0:
            raise InvalidArgument("max_map_size must not be negative (0: the map never grows)")
        if self.max_map_size and self.max_map_size < self.map_size:
            raise InvalidArgument(
                f"max_map_size ({self.max_map_size}) is smaller than map_size ({self.map_size}): set it "
                "to at least map_size, or to 0 for a map that never grows")
        if self.grace_period < 0:
            raise InvalidArgument("grace_period must not be negative")
        if self.key_max_age_days < 0:
            raise InvalidArgument("key_max_age_days must not be negative")
        if self.scrub_interval < 0 or self.scrub_bytes_per_second < 0:
            raise InvalidArgument("scrub_interval and scrub_bytes_per_second must not be negative")
        if not 0 < self.scrub_busy_share <= 1:
            raise InvalidArgument(f"scrub_busy_share must be in (0, 1], not {self.scrub_busy_share}")
        if ":" not in self.listen:
            raise InvalidArgument(f"listen must be host:port, not {self.listen!r}")
        if self.citizen_crls and self.citizen_ca is None:
            raise InvalidArgument("citizen_crls is set without citizen_ca (the CA whose revocation lists they are)")
        if len(self.journal_origin) > 128 or any(ch.isspace() for ch in self.journal_origin):
            raise InvalidArgument("journal_origin must be at most 128 characters without spaces")


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(Config)}


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = _field_types().get(name)
    if kind is None:
        raise InvalidArgument(f"{source}: unknown setting {name!r}")
    try:
        if kind == "list[Path]":
            if isinstance(value, str):
                value = [v for v in (x.strip() for x in value.split(",")) if v]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, Path)) for v in value):
                raise ValueError(value)
            return [Path(str(v)) for v in value]
        if kind.startswith("Path"):
            return None if value in (None, "") else Path(str(value))
        if kind == "bool":
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{source}: {name} = {value!r} is not a valid {kind}") from None


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Defaults < TOML file at ``path`` < environment < ``overrides`` (flags; None = not given)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise InvalidArgument(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise InvalidArgument(f"configuration file {path} is not valid TOML: {e}") from None
        for k, v in data.items():
            values[k] = _coerce(k, v, str(path))
    env = os.environ if env is None else env
    for name in _field_types():
        key = ENV_PREFIX + name.upper()
        if key in env:
            values[name] = _coerce(name, env[key], key)
    for k, v in (overrides or {}).items():
        if v is not None:
            values[k] = _coerce(k, v, "command line")
    return Config(**values)
