"""Agora: a self-hosted attention engine for community platforms."""

__version__ = "0.1.0"
