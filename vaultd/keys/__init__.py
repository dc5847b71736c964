"""Key management: master key providers (file keyring, PKCS#11 token) and envelope encryption."""

from __future__ import annotations

from pathlib import Path

from vaultd.keys.envelope import VaultKeys, WrappedVaultKeys, new_vault_keys, unwrap_vault_keys, wrap_vault_keys
from vaultd.keys.file import FileKeyProvider
from vaultd.keys.provider import KeyProvider

__all__ = [
    "KeyProvider",
    "FileKeyProvider",
    "VaultKeys",
    "WrappedVaultKeys",
    "new_vault_keys",
    "wrap_vault_keys",
    "unwrap_vault_keys",
    "open_key_provider",
]


def open_key_provider(
    kind: str,
    data_dir: Path,
    *,
    passphrase: str | None = None,
    module: str | None = None,
    token_label: str | None = None,
    pin: str | None = None,
    label_prefix: str = "vaultd-kek",
) -> KeyProvider:
    """Build the configured provider: ``file`` (keyring in ``data_dir``) or ``pkcs11``."""
    from vaultd.errors import InvalidArgument

    if kind == "file":
        return FileKeyProvider(data_dir, passphrase=passphrase)
    if kind == "pkcs11":
        if not module or not token_label or pin is None:
            raise InvalidArgument("the pkcs11 key provider needs module, token_label and pin")
        from vaultd.keys.hsm import Pkcs11KeyProvider

        return Pkcs11KeyProvider(module, token_label, pin, label_prefix)
    raise InvalidArgument(f"unknown key provider {kind!r}; use 'file' or 'pkcs11'")
