"""`pip install .` (not editable) must carry every file the code reads at run time: the Lua
scripts, the pages and their assets, the HAProxy example `livecart cluster` renders. A
file left out of pyproject's package-data works in a checkout and fails only for users."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_FILES = ["checkout/store/lua/*.lua", "checkout/payments/lua/*.lua", "live/accounts/lua/*.lua",
                 "overlay/static/*", "overlay/static/vendor/*", "overlay/templates/*", "overlay/fixtures/*",
                 "live/node/haproxy.cfg"]


def test_the_wheel_carries_every_runtime_file(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, cwd=tmp_path)
    [wheel] = tmp_path.glob("livecart-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
        expected = {str(path.relative_to(ROOT)) for pattern in RUNTIME_FILES
                    for path in ROOT.glob(pattern) if path.is_file()}
        assert expected and expected <= packed, sorted(expected - packed)
        # The viewer page's HLS player is served by the node (no CDN at run time).
        assert "overlay/static/vendor/hls.light.min.js" in packed
        # The HAProxy example travels as its content (a link in the repository).
        assert archive.read("live/node/haproxy.cfg") == (ROOT / "deploy/haproxy.cfg").read_bytes()
