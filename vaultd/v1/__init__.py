"""Generated gRPC code of the vaultd API (proto/vaultd/v1); do not edit."""
