"""Software-defined assets: each wires one pure module to the ledger and the checkpoint store."""
