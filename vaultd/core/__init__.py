"""Use cases of the vault: deposit, read, destroy, check and the rest, under the access policy."""
