"""Fixtures of the fleet tests. ``netns_for_test``: the test's own network namespace, its main thread in it
for the whole test (ICE never works on loopback: real Janus and WebRTC publishers need it; tests/helpers/
netns.py; skipped with the reason where namespaces cannot be made)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from netns import NetNamespace, network_namespace


@pytest.fixture
def netns_for_test() -> Iterator[NetNamespace]:
    with network_namespace() as ns, ns.entered():
        yield ns
