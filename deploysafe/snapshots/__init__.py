"""Snapshots: names, retention, what is in use, and the snapshot commands."""
