"""The audit log of admin actions: every request that used the ``admin`` scope to change
something, with who (the key's fingerprint), what (method, route, path ids), the outcome and
the request id; read with ``GET /admin/audit`` and ``agora admin audit``."""
