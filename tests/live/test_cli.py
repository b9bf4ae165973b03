"""The README's first command, as a new user runs it: `livecart serve --demo`."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import jwt

from conftest import UNIT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_serve_demo_prints_urls_and_tokens_that_work(tmp_path: Path) -> None:
    port, ws_port = _free_port(), _free_port()
    env = {**os.environ, "COLUMNS": "400"}
    env.pop("LIVECART_JWT_SECRET", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "live.node.cli", "serve", "--demo", "--port", str(port),
        "--ws-port", str(ws_port),
        "--data-dir", str(tmp_path / "data"), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30 * UNIT):
            while not any("Uvicorn running" in line for line in lines):
                line = (await proc.stdout.readline()).decode()
                assert line, "server exited: " + "".join(lines)
                lines.append(line)
        out = "".join(lines)
        assert f"http://127.0.0.1:{port}" in out
        assert f"ws://127.0.0.1:{ws_port}/ws/streams/" in out
        assert re.search(r"/s/s_\w+#token=\S+", out) and "/brand/acme#token=" in out
        buyer = re.search(r"token buyer bob\s+(\S+)", out)
        stream = re.search(r"/api/v1/streams/(s_\w+)", out)
        product = re.search(r"/p/(p_\w+)", out)
        assert buyer and stream and product, out
        # Printed tokens land in terminals and scrollback: short-lived, and the banner says so.
        claims = jwt.decode(buyer.group(1), options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 3600
        expiry = time.strftime("%H:%M", time.localtime(claims["exp"]))
        assert re.search(rf"tokens expire at {expiry} .*livecart token", out), out
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            r = await http.post("/api/v1/buy", json={
                "product_id": product.group(1), "variant": "size-40",
                "stream_id": stream.group(1)},
                headers={"Authorization": f"Bearer {buyer.group(1)}",
                         "Idempotency-Key": "readme-first-buy"})
            assert r.status_code == 201, r.text
            assert r.json()["order"]["state"] == "paid"
        # The banner says how to sign in; without SMTP the mail, code and all, is in the log.
        assert re.search(rf"sign in +http://127.0.0.1:{port}/signin .*logged here", out), out
        assert re.search(rf"signed in +http://127.0.0.1:{port}/me/wallet .*/me/orders", out), out
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            r = await http.post("/auth/email/start", json={"email": "newbie@example.com"})
            assert r.status_code == 202, r.text
            async with asyncio.timeout(10 * UNIT):
                while not (code := re.search(r"sign-in code is (\d{6})", "".join(lines))):
                    lines.append((await proc.stdout.readline()).decode())
            r = await http.post("/auth/email/verify", json={"challenge": r.json()["challenge"],
                                                            "code": code.group(1)})
            assert r.status_code == 200 and r.json()["account"]["email"] == "newbie@example.com"
        # A fresh `livecart token` against the same data dir verifies on the server.
        minted = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "live.node.cli", "token", "brand", "acme", "--data-dir",
            str(tmp_path / "data"), stdout=asyncio.subprocess.PIPE, env=env)
        token = (await minted.communicate())[0].decode().strip()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            r = await http.get("/api/v1/brands/acme/report",
                               headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(15 * UNIT):
            await proc.wait()
    assert proc.returncode == 0
    # The embedded Valkey stopped with the server: its port no longer answers.
    conf = (tmp_path / "data" / "valkey" / "valkey.conf").read_text()
    valkey_port = int(re.search(r"^port (\d+)", conf, re.M).group(1))  # type: ignore[union-attr]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", valkey_port)) != 0


async def _start_serve(data_dir: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    """`livecart serve` on free ports; returns once uvicorn says it is running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "live.node.cli", "serve", "--port", str(_free_port()),
        "--ws-port", str(_free_port()), "--data-dir", str(data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30 * UNIT):
            while not any("Uvicorn running" in line for line in lines):
                line = (await proc.stdout.readline()).decode()
                assert line, "server exited: " + "".join(lines)
                lines.append(line)
    except BaseException:
        await _stop_serve(proc)
        raise
    return proc


async def _stop_serve(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(15 * UNIT):
        await proc.wait()


async def test_second_node_on_the_same_data_dir_refuses_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {**os.environ}
    env.pop("LIVECART_JWT_SECRET", None)
    first = await _start_serve(data, env)
    try:
        conf = (data / "valkey" / "valkey.conf").read_bytes()
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "live.node.cli", "serve", "--port", str(_free_port()),
            "--ws-port", str(_free_port()), "--data-dir", str(data),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        try:
            async with asyncio.timeout(30 * UNIT):
                out, err = await second.communicate()
        finally:
            if second.returncode is None:
                second.kill()
                await second.wait()
        assert second.returncode == 1, (out + err).decode()
        message = err.decode()
        assert f"data dir {data} is in use" in message and f"pid {first.pid}" in message, message
        assert "Traceback" not in message
        assert (data / "valkey" / "valkey.conf").read_bytes() == conf
        # Reading the secret while the node runs still works.
        minted = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "live.node.cli", "token", "buyer", "bob", "--data-dir", str(data),
            stdout=asyncio.subprocess.PIPE, env=env)
        assert (await minted.communicate())[0].count(b".") == 2 and minted.returncode == 0
    finally:
        await _stop_serve(first)
    assert first.returncode == 0
    # The lock went with the first node: the data dir serves again.
    await _stop_serve(await _start_serve(data, env))
