"""The custody ledger: append-only, hash-linked events, and the services that write them."""
