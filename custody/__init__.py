"""Chain of custody, by capability: ledger (the bottom layer), manufacturing and shipping,
trials above them, the bedside above trials, and interop and trace on top (pyproject.toml's
import-linter contract keeps that order)."""
