"""The small HTML home page served at ``/``."""
