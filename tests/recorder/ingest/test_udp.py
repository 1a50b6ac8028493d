"""The UDP sockets of the recorder are read in batches (recorder/ingest/udp.py): whatever waits in many
sockets at once is delivered, every datagram, in each socket's order, also when a handler fails or
closes sockets in the middle of a batch, and with the loop's own reader where epoll is missing."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest

from recorder.ingest import udp
from recorder.ingest.udp import DatagramSocket

Received = dict[int, list[bytes]]
TIMEOUT = 30.0


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def collector(received: Received, index: int) -> Callable[[bytes, tuple[str, int]], None]:
    def handler(data: bytes, addr: tuple[str, int]) -> None:
        received.setdefault(index, []).append(data)

    return handler


async def until(condition: Callable[[], bool]) -> None:
    """Wait for `condition`, at most TIMEOUT seconds (a generous bound, not a speed assumption)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        assert loop.time() < deadline, "datagrams not delivered in time"
        await asyncio.sleep(0.01)


def burst(sender: socket.socket, sockets: list[DatagramSocket], count: int) -> dict[int, list[bytes]]:
    """Send `count` datagrams to every socket, interleaved, before the loop reads any; returns what
    each should receive, in order."""
    sent: dict[int, list[bytes]] = {}
    for n in range(count):
        for i, s in enumerate(sockets):
            data = f"{i}:{n}".encode() * 10
            sender.sendto(data, ("127.0.0.1", s.port))
            sent.setdefault(i, []).append(data)
    return sent


async def test_every_datagram_of_many_sockets_arrives_in_order(sender: socket.socket) -> None:
    received: Received = {}
    sockets = [DatagramSocket("127.0.0.1", 0, collector(received, i)) for i in range(40)]
    try:
        sent = burst(sender, sockets, 25)  # sent while the loop is busy here: read in batches
        await until(lambda: sum(map(len, received.values())) == 40 * 25)
        assert received == sent
        # Connected to its sender, a socket is read with recv and the handler still gets the address.
        addresses: list[tuple[str, int]] = []
        sockets[0].connect(sender.getsockname())
        sockets[0].handler = lambda data, addr: addresses.append(addr)
        sender.sendto(b"after connect", ("127.0.0.1", sockets[0].port))
        await until(lambda: bool(addresses))
        assert addresses == [sender.getsockname()]
    finally:
        for s in sockets:
            s.close()
    assert asyncio.get_running_loop() not in udp._pollers  # the last socket closed takes the poller away


async def test_a_failing_handler_or_one_closing_sockets_stops_nothing_else(
    sender: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    received: Received = {}
    sockets: list[DatagramSocket] = []

    def failing(data: bytes, addr: tuple[str, int]) -> None:
        raise RuntimeError("a broken stream")

    def closing(data: bytes, addr: tuple[str, int]) -> None:
        received.setdefault(1, []).append(data)
        sockets[1].close()
        sockets[2].close()  # another socket, maybe with datagrams waiting in the same batch

    sockets.append(DatagramSocket("127.0.0.1", 0, failing))
    sockets.append(DatagramSocket("127.0.0.1", 0, closing))
    sockets.append(DatagramSocket("127.0.0.1", 0, collector(received, 2)))
    sockets += [DatagramSocket("127.0.0.1", 0, collector(received, i)) for i in range(3, 10)]
    try:
        sent = burst(sender, sockets, 5)
        await until(lambda: all(len(received.get(i, [])) == 5 for i in range(3, 10)))
        assert {i: received[i] for i in range(3, 10)} == {i: sent[i] for i in range(3, 10)}
        assert received[1] == sent[1][:1]  # closed by its own first datagram
        assert len(received.get(2, [])) <= 1
        assert "datagram handler failed" in caplog.text
        # The poller keeps serving the sockets still open.
        sender.sendto(b"later", ("127.0.0.1", sockets[5].port))
        await until(lambda: received[5][-1] == b"later")
    finally:
        for s in sockets:
            s.close()


async def test_without_epoll_each_socket_is_read_by_the_loop(
    sender: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(udp, "EPOLL", False)
    received: Received = {}
    sockets = [DatagramSocket("127.0.0.1", 0, collector(received, i)) for i in range(5)]
    try:
        sent = burst(sender, sockets, udp.MAX_BATCH + 10)  # more than one wakeup's worth
        await until(lambda: sum(map(len, received.values())) == 5 * (udp.MAX_BATCH + 10))
        assert received == sent
    finally:
        for s in sockets:
            s.close()


async def test_a_backlog_larger_than_one_drain_is_read_over_several(
    sender: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(udp, "MAX_DRAIN", 7)
    ticks = 0
    received: Received = {}
    turns: list[int] = []  # the other work's turn at which each datagram was handled

    def handler(index: int) -> Callable[[bytes, tuple[str, int]], None]:
        keep = collector(received, index)

        def handle(data: bytes, addr: tuple[str, int]) -> None:
            turns.append(ticks)
            keep(data, addr)

        return handle

    async def other_work() -> None:  # the loop's other work, one turn per iteration
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    sockets = [DatagramSocket("127.0.0.1", 0, handler(i)) for i in range(4)]
    task = asyncio.create_task(other_work())
    try:
        sent = burst(sender, sockets, 30)
        await until(lambda: sum(map(len, received.values())) == 4 * 30)
        assert received == sent
        # Between two turns of other work, one drain: at most MAX_DRAIN plus one round of datagrams.
        assert max(turns.count(t) for t in set(turns)) <= 7 + 4
    finally:
        task.cancel()
        for s in sockets:
            s.close()


async def test_a_steady_stream_is_drained_by_timer_and_an_idle_poller_goes_back_to_the_loop(
    sender: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While datagrams keep coming, each drain is followed by the next one on a timer: the epoll
    descriptor is not handed back to the loop per drain (adding an epoll to the loop's epoll makes the
    kernel walk all of its sockets). Once idle, the loop watches it again and no timer runs."""
    loop = asyncio.get_running_loop()
    watched = 0
    add_reader = loop.add_reader

    def counting_add_reader(fd: int, callback: Callable[[], None]) -> None:
        nonlocal watched
        watched += 1
        add_reader(fd, callback)

    monkeypatch.setattr(loop, "add_reader", counting_add_reader)
    received: Received = {}
    sockets = [DatagramSocket("127.0.0.1", 0, collector(received, i)) for i in range(3)]
    poller = udp._pollers[loop]
    try:
        for n in range(60):  # about 0.3 s of a stream: ~30 drains
            for s in sockets:
                sender.sendto(b"%d" % n, ("127.0.0.1", s.port))
            await asyncio.sleep(0.005)
        await until(lambda: sum(map(len, received.values())) == 3 * 60)
        assert received == {i: [b"%d" % n for n in range(60)] for i in range(3)}
        assert watched <= 3, f"the descriptor was handed back to the loop {watched} times during one stream"
        await until(lambda: not poller.waiting)  # idle: watched by the loop again, no timer
        sender.sendto(b"after a pause", ("127.0.0.1", sockets[0].port))
        await until(lambda: received[0][-1] == b"after a pause")
    finally:
        for s in sockets:
            s.close()
