"""Test PKI generated at test time with `cryptography` (no private keys are checked in)."""
