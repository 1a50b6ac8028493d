"""Fixtures for end-to-end tests with real WebRTC publishers (aiortc) and a real Janus.

ICE never works on loopback, so every test here runs in its own network namespace (``netns.py``):

* ``netns_for_test`` creates the namespace and moves the test's main thread into it for the whole test
  (``ns.entered()``; the pytest-asyncio loop runs on that thread). Everything the test opens from there
  (the RecordingSession's UDP sockets, the Janus WebSocket client) and everything it starts (Janus, the
  publisher subprocesses, worker threads) lives in the namespace. Afterwards the thread goes back and the
  namespace is deleted. Not root / no iproute2 / namespaces refused: the test is skipped with the reason.
* ``janus_in_netns`` starts Janus 1.1.2 in that namespace with ICE enforced on its veth (``jv0``) and a
  room accepting VP8 and H.264; its WebSocket API is on 127.0.0.1 inside the namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from janus_fixture import JanusServer, start_or_skip
from netns import NetNamespace, network_namespace


@pytest.fixture
def netns_for_test() -> Iterator[NetNamespace]:
    with network_namespace() as ns, ns.entered():
        yield ns


@pytest.fixture
def janus_in_netns(netns_for_test: NetNamespace, tmp_path: Path) -> Iterator[JanusServer]:
    server = JanusServer(tmp_path / "janus", ice_enforce_list=netns_for_test.interface, videocodec="vp8,h264")
    start_or_skip(server)
    try:
        yield server
    finally:
        server.stop()
