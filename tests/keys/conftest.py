from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from softhsm import make_token, softhsm_module

@dataclass
class Token:
    module: str
    label: str
    pin: str
    conf: Path


@pytest.fixture
def softhsm_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Token]:
    """A fresh SoftHSM2 token in a temporary folder (SOFTHSM2_CONF points at a temporary config)."""
    conf = make_token(tmp_path, "vaultd-test")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    module = softhsm_module()
    # SoftHSM2 reads SOFTHSM2_CONF when initialised; python-pkcs11 keeps one instance per module
    # and initialises it again on next use once finalised. Finalise before (to read this config)
    # and after (so later tests read theirs).
    _finalize(module)
    yield Token(module, "vaultd-test", "1234", conf)
    gc.collect()
    _finalize(module)


def _finalize(module: str) -> None:
    import pkcs11

    lib = pkcs11._loaded.get(module)
    if lib is not None and lib.initialized:
        lib.finalize()
