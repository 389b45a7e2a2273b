"""A deploy: its plan, the steps that run it, probes, watch and rollback."""
