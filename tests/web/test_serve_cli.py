"""``chrono serve`` as a user starts it: the token from pipeline.yaml (``${VAR}`` expanded), a
real server process, 401 without the token and 200 with it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_takes_the_token_from_pipeline_yaml(tmp_path: Path) -> None:
    token = "token-from-pipeline-yaml-0123456789"
    (tmp_path / "pipeline.yaml").write_text(
        f"data_dir: {tmp_path / 'data'}\nweb:\n  token: ${{CHRONO_TEST_WEB_TOKEN}}\n")
    env = {k: v for k, v in os.environ.items() if k != "CHRONO_TOKEN"}
    env["CHRONO_TEST_WEB_TOKEN"] = token
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chrono.cli.main", "serve", "--config",
         str(tmp_path / "pipeline.yaml"), "--db", f"sqlite:///{tmp_path / 'chrono.db'}",
         "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("chrono serve did not answer /health")
        assert httpx.get(f"{base}/api/events", timeout=5).status_code == 401
        wrong = httpx.get(f"{base}/api/events", headers={"Authorization": "Bearer nope-nope"},
                          timeout=5)
        assert wrong.status_code == 401
        ok = httpx.get(f"{base}/api/events", headers={"Authorization": f"Bearer {token}"},
                       timeout=5)
        assert ok.status_code == 200, ok.text
        assert not (tmp_path / "data" / "state" / "web_token").exists()  # none generated
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert token not in output  # a configured token is never printed
