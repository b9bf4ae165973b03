import asyncio

import pytest

from loadtest.video_source import CounterTrack
from loadtest.webrtc_peers import publish, watch
from tests.conftest import UNIT, Live
from tests.shop import make_brand, make_product

pytestmark = pytest.mark.asyncio


@pytest.fixture
def node_settings() -> dict:
    return {"video_ice_hosts": ("127.0.0.1",)}


async def test_smoke(live: Live) -> None:
    await make_brand(live)
    product = await make_product(live)
    r = await live.http.post("/api/v1/streams", json={"title": "Drop", "lineup": [product["id"]]},
                             headers=live.auth("creator", "cleo"))
    stream = r.json()
    pub = await publish(live.http, stream["id"], live.token("creator", "cleo"), CounterTrack())
    v1 = await watch(live.http, stream["id"])
    v2 = await watch(live.http, stream["id"])
    await asyncio.sleep(3)
    print(v1.frames, v1.counters[:5], v1.counters[-5:], v2.frames, v1.messages[:3])
    r = await live.http.get(f"/api/v1/streams/{stream['id']}/video", headers=live.auth("creator", "cleo"))
    print(r.json())
    session = live.services.video.sessions[stream["id"]]
    for t in session.video.fanout.subscribers: print("track", t.delivered, t.dropped, t.waiting_for_keyframe, t.first_pts)
    print(await v1.pc.getStats())
    await v1.close(); await v2.close(); await pub.stop()
