"""Envelope encryption of vault keys: each vault's data key and dedup key, wrapped by a KEK version.

The data key seals the vault's chunks (AES-256-GCM); the dedup key keys the BLAKE3 that names them,
so the same bytes in two vaults get unrelated ids. Both are 32 random bytes made when the vault is
created, and are only ever stored wrapped. The associated data of a wrap binds the vault id, the
purpose and the KEK version, so a wrapped key cannot be moved to another vault or role.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from vaultd.keys.provider import KeyProvider, unpack_wrapped

__all__ = ["VaultKeys", "WrappedVaultKeys", "new_vault_keys", "wrap_vault_keys", "unwrap_vault_keys", "wrap_aad"]


@dataclass(frozen=True)
class VaultKeys:
    data_key: bytes = field(repr=False)
    dedup_key: bytes = field(repr=False)
    data_key_version: int = 1  # bound into every chunk's AAD; rotation of the KEK does not change it


@dataclass(frozen=True)
class WrappedVaultKeys:
    kek_version: int
    data_key: bytes
    dedup_key: bytes
    data_key_version: int = 1


def new_vault_keys() -> VaultKeys:
    return VaultKeys(secrets.token_bytes(32), secrets.token_bytes(32), 1)


def wrap_aad(vault: str, purpose: str, kek_version: int) -> bytes:
    return b"vaultd/vault-key/v1\x00" + vault.encode("ascii") + b"\x00" + purpose.encode() + b"\x00" + str(
        kek_version
    ).encode()


def wrap_vault_keys(provider: KeyProvider, vault: str, keys: VaultKeys, kek_version: int | None = None) -> WrappedVaultKeys:
    v = provider.current_version() if kek_version is None else kek_version
    return WrappedVaultKeys(
        kek_version=v,
        data_key=provider.wrap(keys.data_key, wrap_aad(vault, "data", v), v),
        dedup_key=provider.wrap(keys.dedup_key, wrap_aad(vault, "dedup", v), v),
        data_key_version=keys.data_key_version,
    )


def unwrap_vault_keys(provider: KeyProvider, vault: str, w: WrappedVaultKeys) -> VaultKeys:
    dv = unpack_wrapped(w.data_key)[0]
    ddv = unpack_wrapped(w.dedup_key)[0]
    return VaultKeys(
        data_key=provider.unwrap(w.data_key, wrap_aad(vault, "data", dv)),
        dedup_key=provider.unwrap(w.dedup_key, wrap_aad(vault, "dedup", ddv)),
        data_key_version=w.data_key_version,
    )
