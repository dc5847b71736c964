"""The gRPC face of vaultd: thin servicers, interceptors (auth, logging, metrics), the status table
and the server construction (health, reflection, TLS)."""
