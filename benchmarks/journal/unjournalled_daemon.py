"""``vaultd serve`` with the journal unplugged from the store: the baseline of the journal's cost in
``bench_journal.py --daemon``, and nothing else.

The daemon is the real one (same CLI, configuration, TLS, interceptors, metrics, policy, store and
keys); only ``open_vaults`` is called without the journal's leaf factory, append hook and after-commit
hook, so deposits are stored and acknowledged exactly as with the journal but leave no leaf, sign no
checkpoint and return no evidence. vaultd itself has no such mode: a vault without its journal proves
nothing. Run as ``python benchmarks/journal/unjournalled_daemon.py serve --dev ...``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vaultd.core import vaults as _vaults  # noqa: E402

_open_vaults = _vaults.open_vaults


def _open_without_journal(*args: Any, **kwargs: Any) -> Any:
    for hook in ("leaf_factory", "journal", "after_commit"):
        kwargs.pop(hook, None)
    return _open_vaults(*args, **kwargs)


_vaults.open_vaults = _open_without_journal  # type: ignore[assignment]

if __name__ == "__main__":
    from vaultd.cli.daemon import main

    sys.exit(main())
