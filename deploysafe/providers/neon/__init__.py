"""Neon: its HTTP API and the provider built on it."""
