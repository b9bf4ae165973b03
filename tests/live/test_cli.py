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
from inbox import Inbox, smtp  # noqa: F401 - the fixture
from test_signin import sign_in


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
        # It invites an operator, acme's admin and cleo by email (the links printed, the mails
        # logged): signing in as acme@example.com and accepting makes that account acme's.
        invites = dict(re.findall(r"invitation +(\S+) for \S+: (http://\S+/invite/\S+)", out))
        assert set(invites) == {"operator:ops", "brand:acme", "creator:cleo"}, out
        assert all(link in out.split("Uvicorn running")[0] for link in invites.values())
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            r = await http.post("/auth/email/start", json={"email": "acme@example.com"})
            assert r.status_code == 202, r.text
            mailed = r"mail to acme@example\.com \(no[^\n]*\nSubject: [^\n]*code: (\d{6})"
            async with asyncio.timeout(10 * UNIT):
                while not (code := re.search(mailed, "".join(lines))):
                    lines.append((await proc.stdout.readline()).decode())
            r = await http.post("/auth/email/verify", json={"challenge": r.json()["challenge"],
                                                            "code": code.group(1)})
            csrf = {"X-CSRF-Token": r.json()["csrf"]}
            r = await http.post("/auth/invitations/accept", headers=csrf,
                                json={"token": invites["brand:acme"].rsplit("/", 1)[1]})
            assert r.status_code == 200 and r.json()["console"] == "/brand/acme", r.text
            r = await http.post("/auth/act", json={"grant": "brand:acme"}, headers=csrf)
            assert r.status_code == 200, r.text
            assert (await http.get("/api/v1/brands/acme/report")).status_code == 200
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


async def _start_serve(data_dir: Path, env: dict[str, str],
                       port: int | None = None) -> asyncio.subprocess.Process:
    """`livecart serve` on free ports (or HTTP on `port`); returns once uvicorn says it is
    running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "live.node.cli", "serve", "--port", str(port or _free_port()),
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


async def test_livecart_invite_brings_in_the_first_brand_admin(tmp_path: Path,
                                                               smtp: Inbox) -> None:  # noqa: F811
    """A fresh install: no account anywhere. `livecart invite` mails the first brand admin
    (the brand made with it) through the node's SMTP server and prints the same link."""
    port = _free_port()
    data = tmp_path / "data"
    env = {**os.environ, "LIVECART_SMTP_URL": smtp.url}
    env.pop("LIVECART_JWT_SECRET", None)
    proc = await _start_serve(data, env, port)

    async def invite(*args: str) -> tuple[int, str]:
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "live.node.cli", "invite", *args, "--data-dir", str(data),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
        async with asyncio.timeout(30 * UNIT):
            out = (await cli.communicate())[0].decode()
        assert cli.returncode is not None
        return cli.returncode, out

    try:
        code, out = await invite("--email", "first@example.com", "--grant", "brand:acme",
                                 "--brand-name", "Acme Outfitters", "--port", str(port))
        assert code == 0, out
        assert "Invited first@example.com as an admin of the brand Acme Outfitters." in out
        link = re.search(r"link +(http://\S+/invite/(\S+))", out)
        assert link, out
        mail = await smtp.next_mail("first@example.com")
        assert link.group(1) in mail.text
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     timeout=10 * UNIT) as http:
            session = await sign_in(http, smtp, "first@example.com")
            csrf = {"X-CSRF-Token": session["csrf"]}
            r = await http.post("/auth/invitations/accept", json={"token": link.group(2)},
                                headers=csrf)
            assert r.status_code == 200, r.text
            assert (await http.post("/auth/act", json={"grant": "brand:acme"},
                                    headers=csrf)).status_code == 200
            r = await http.get("/api/v1/brands/acme/team")
            assert [m["email"] for m in r.json()["items"]] == ["first@example.com"]
        # Refused (already an admin): exit 1 and the node's reason.
        code, out = await invite("--email", "first@example.com", "--grant", "brand:acme",
                                 "--port", str(port))
        assert code == 1 and "already granted" in out.lower(), out
    finally:
        await _stop_serve(proc)
    # No node: exit 2.
    code, out = await invite("--email", "x@example.com", "--grant", "creator:x", "--port",
                             str(_free_port()))
    assert code == 2 and "could not reach" in out, out
