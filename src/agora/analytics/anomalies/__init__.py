"""Fake-engagement detection: anomalous users and items, their routes and command."""
