"""A Gorse-compatible API under ``/api/``: platforms written against Gorse's REST API and its
clients (pygorse, gorsejs) switch to Agora by changing one URL (see docs/gorse.md)."""
