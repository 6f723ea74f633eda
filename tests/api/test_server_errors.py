"""A 500 is a complete JSON answer with a request id, and the kept-alive connection that carried
it stays usable: the client's next request on the same socket succeeds (real uvicorn)."""

from __future__ import annotations

import http.client
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def test_next_request_on_the_connection_after_a_500_succeeds(tmp_path: Path, spawn_server):
    command = [sys.executable, "-m", "uvicorn", "--factory", "failing_app:create_app"]
    env = {
        "AGORA_DATA_DIR": str(tmp_path / "data"),
        "AGORA_API_KEY": "live-key",
        "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)]),
    }
    server = spawn_server(command, env)
    host, port = server.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/test-only/boom", headers={"X-Request-ID": "boom-req-1"})
        failed = conn.getresponse()
        body = json.loads(failed.read())
        assert failed.status == 500
        assert failed.getheader("content-type") == "application/json"
        assert body["detail"] == "internal server error (logged on the server)"
        assert body["request_id"] == failed.getheader("x-request-id") == "boom-req-1"
        socket_before = conn.sock
        assert socket_before is not None and failed.getheader("connection") != "close"

        conn.request("GET", "/health")  # the same kept-alive socket
        after = conn.getresponse()
        assert after.status == 200 and json.loads(after.read())["status"] == "ok"
        assert conn.sock is socket_before
    finally:
        conn.close()
    # the traceback is logged (not answered), on a JSON line with the request's id
    logged = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    errors = [line for line in logged if line["level"] == "error"]
    assert len(errors) == 1 and errors[0]["request_id"] == "boom-req-1", errors
    assert "a bug the test planted" in errors[0]["exception"]
    access = [line for line in logged if line["logger"] == "agora.access"]
    assert {"route": "/test-only/boom", "status": 500} in [
        {"route": line["route"], "status": line["status"]} for line in access
    ]
