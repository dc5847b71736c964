"""Command-line entry points: ``vaultd`` (the daemon) and ``vaultctl`` (the operator's client)."""
