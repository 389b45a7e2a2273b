"""The demo: an embedded PostgreSQL server and the demo app."""
