"""Cluster mode: the spool's jobs run on a Ray cluster of appliances (DESIGN §4, docs/operations.md)."""
