"""Thin entry points, one per step: parse config, open the session, read, transform, write, record."""
