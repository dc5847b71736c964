"""vaultd: a digital vault for documents with legal value.

The public Python face of the project. The crypto core lives in ``vaultd.crypto``; the client library
for city services in ``vaultd.client``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
