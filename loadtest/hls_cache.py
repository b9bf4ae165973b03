"""A real HTTP cache in front of a node for the HLS load test: Debian's nginx, started as a
child with its own config, cache and logs in a temp dir (no system service, no root port).

The config is what a CDN edge does with the node's headers: `proxy_cache` honouring the
origin's Cache-Control (segments a year, the live playlist 1 s), `proxy_cache_lock` so the
misses of many viewers for one new file become one origin fetch, revalidation of an expired
playlist with the origin's ETag (`proxy_cache_revalidate`) while the others get the stale
copy (`proxy_cache_use_stale updating`), keep-alive to the origin, and 304s to the viewers'
If-None-Match from the cache itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from loadtest.server_process import free_port

__all__ = ["NginxCache", "nginx_binary"]

_CONFIG = """\
{user}worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
daemon off;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=hls:10m max_size=2g inactive=10m
                     use_temp_path=off;
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location /hls/ {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache hls;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 10s;
            proxy_cache_lock_age 10s;
            proxy_cache_revalidate on;
            proxy_cache_use_stale updating;
            add_header X-Cache $upstream_cache_status;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    """Debian's nginx (nginx-light or nginx: /usr/sbin is not on every PATH)."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


class NginxCache:
    """nginx on a free loopback port caching `origin_port`; `async with` starts and stops it."""

    def __init__(self, origin_port: int, workers: int = 1) -> None:
        self.origin_port = origin_port
        self.workers = workers
        self.port = 0
        self.dir = Path(tempfile.mkdtemp(prefix="livecart-nginx-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed: apt-get install nginx-light")
        user = ""
        if os.geteuid() == 0:  # as root nginx's workers drop to nobody: give them the dir
            nobody = pwd.getpwnam("nobody")
            user = f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};\n"
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
        self.port = free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(_CONFIG.format(user=user, workers=self.workers, dir=self.dir,
                                       origin_port=self.origin_port, port=self.port))
        log = open(self.dir / "stderr.log", "ab")
        with log:
            self._proc = subprocess.Popen(
                [binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(conf)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        for _ in range(100):
            if self._proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self._proc.returncode}: "
                                   f"{self.log_tail()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise RuntimeError(f"nginx did not listen on {self.port}: {self.log_tail()}")

    def log_tail(self) -> str:
        out = []
        for name in ("stderr.log", "error.log"):
            with contextlib.suppress(OSError):
                out.append((self.dir / name).read_text(errors="replace")[-2000:])
        return "\n".join(out)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGQUIT)  # graceful: the workers finish and go
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
        shutil.rmtree(self.dir, ignore_errors=True)

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
