"""UDP sockets read in batches: every socket of an event loop drained together, a few times per
second's hundredth, instead of one event-loop wakeup per datagram.

At a few hundred concurrent streams a recorder receives tens of thousands of datagrams per second,
each stream only a hundred or so; a readiness callback per socket then reads about one datagram per
wakeup, and the wakeups (the loop's poll, its callback, the read that finds the socket empty) cost more
than the recording itself. Here all the `DatagramSocket`s of one event loop are registered with one
`select.epoll` object (a `_Poller`), whose own descriptor is the only thing the loop watches. When it
becomes readable, the loop stops watching it and, `BATCH_DELAY` later, drains it: each round asks the
epoll object which sockets hold data (without waiting) and reads one datagram from each, until none
does (or `MAX_DRAIN` were read: the next drain then follows the loop's other work at once). A drain
that read something is followed by the next one `BATCH_DELAY` later, by a timer; only a drain that
found every socket empty makes the loop watch the descriptor again. A busy recorder thus reads many
datagrams per wakeup, never raises on an empty socket, and never re-registers the descriptor with the
loop's own epoll (adding one epoll to another makes the kernel walk every socket of the nested one:
that was 3 % of a busy recorder's CPU); an idle one costs nothing. Datagrams wait in the kernel's
socket buffers (`RECEIVE_BUFFER`) at most `BATCH_DELAY` plus one drain, and are stamped with their
arrival time when read, so arrival times are late by at most that much (the same for every track of
the loop).

Where `select.epoll` does not exist (macOS), each socket is watched by the loop itself and read until
empty on each readiness (`MAX_BATCH` datagrams at most), as before.

Once `connect()`ed to its one sender, a socket is read with `recv` (no address to build per datagram:
the kernel only delivers that sender's datagrams), but only after it has been found empty once: datagrams
that other senders got into its buffer before the `connect()` stay queued, and are read with `recvfrom`
so that the handler sees (and drops) them by their real source address.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)

Address = tuple[str, int]
Handler = Callable[[bytes, Address], None]

RECV_SIZE = 4096
"""Bytes read per datagram: RTP from an SFU stays under the path MTU (about 1,500 bytes)."""
MAX_BATCH = 64
"""Without epoll: datagrams read per socket wakeup before the loop serves other sockets (fairness)."""
BATCH_DELAY = 0.01
"""Seconds between the first datagram of a batch becoming readable and the batch being read."""
MAX_DRAIN = 2048
"""Datagrams read per drain, about: when more wait, the next drain follows at once, after whatever else
the loop has to do (the API of `serve`, the session's timer)."""
RECEIVE_BUFFER = 1 << 20
"""SO_RCVBUF asked for each socket: room for a keyframe's burst (or a busy moment of the event loop)
without the kernel dropping datagrams; the kernel caps it at net.core.rmem_max (raise that sysctl on hosts
where it is lower) and only uses the memory when datagrams wait."""

EPOLL = hasattr(select, "epoll")
"""Whether the sockets are drained together (False: each one is watched by the loop itself)."""

_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Poller] = weakref.WeakKeyDictionary()


class _Poller:
    """The `DatagramSocket`s of one event loop, drained together (see the module's docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.epoll = select.epoll()
        self.fd = self.epoll.fileno()
        self.sockets: dict[int, DatagramSocket] = {}
        self.connecting: list[DatagramSocket] = []
        """Sockets connected since the last drain that emptied every socket (their buffers may still hold
        datagrams from other sources, queued before the connect)."""
        self.waiting = False
        """True between the epoll descriptor becoming readable and the drain (the loop ignores it)."""
        loop.add_reader(self.fd, self._readable)

    def add(self, sock: DatagramSocket) -> None:
        fd = sock.sock.fileno()
        self.epoll.register(fd, select.EPOLLIN)
        self.sockets[fd] = sock

    def remove(self, sock: DatagramSocket) -> None:
        fd = sock.sock.fileno()
        if self.sockets.pop(fd, None) is None:
            return
        self.epoll.unregister(fd)
        if not self.sockets:
            if not self.waiting:
                self.loop.remove_reader(self.fd)
            self.epoll.close()
            if _pollers.get(self.loop) is self:
                del _pollers[self.loop]

    def _readable(self) -> None:
        self.loop.remove_reader(self.fd)
        self.waiting = True
        self.loop.call_later(BATCH_DELAY, self._drain)

    def _drain(self) -> None:
        self.waiting = False
        if self.epoll.closed:
            return
        poll, sockets = self.epoll.poll, self.sockets
        budget, more = MAX_DRAIN, False
        try:
            while ready := poll(0):
                if budget <= 0:
                    more = True
                    break
                budget -= len(ready)
                for fd, _events in ready:  # one datagram from each socket holding any
                    sock = sockets.get(fd)
                    if sock is None:  # closed by a handler earlier in this round
                        continue
                    peer = sock.peer
                    try:
                        if peer is None:
                            data, addr = sock.recvfrom(RECV_SIZE)
                        else:
                            data, addr = sock.recv(RECV_SIZE), peer
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as exc:  # an ICMP error for something we sent (a PLI to a closed port)
                        sock.failed(exc)
                        continue
                    try:
                        sock.handler(data, addr)
                    except Exception:  # one stream's failure never stops the others' reading
                        log.exception("UDP port %d: datagram handler failed", sock.port)
            else:  # every socket is empty now: what a connected one reads from here on is its peer's
                for connected in self.connecting:
                    connected.peer = connected.connected
                self.connecting.clear()
        finally:
            if not self.epoll.closed:
                if more:
                    self.waiting = True
                    self.loop.call_soon(self._drain)
                elif budget < MAX_DRAIN:  # read something: more is likely to come, look again later
                    self.waiting = True
                    self.loop.call_later(BATCH_DELAY, self._drain)
                else:
                    self.loop.add_reader(self.fd, self._readable)


def _poller(loop: asyncio.AbstractEventLoop) -> _Poller | None:
    if not EPOLL:
        return None
    poller = _pollers.get(loop)
    if poller is None:
        poller = _pollers[loop] = _Poller(loop)
    return poller


class DatagramSocket:
    def __init__(self, address: str, port: int, handler: Handler) -> None:
        """Bind `address:port` (port 0: any free one) and read it on the running loop."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.bind((address, port))
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.recv: Callable[[int], bytes] = sock.recv
        self.recvfrom: Callable[[int], tuple[bytes, Address]] = sock.recvfrom
        """The socket's reads, bound once: no method lookup per datagram."""
        self.handler = handler
        self.peer: Address | None = None
        """The connected sender, once nothing queued before the connect is left: read with `recv`."""
        self.connected: Address | None = None
        self.errors = 0
        self._loop = asyncio.get_running_loop()
        self._poller = _poller(self._loop)
        if self._poller is not None:
            self._poller.add(self)
        else:
            self._loop.add_reader(sock.fileno(), self._readable)

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def failed(self, exc: OSError) -> None:
        self.errors += 1
        log.debug("UDP port %d: %s", self.port, exc)

    def _readable(self) -> None:
        """Without epoll: read what the socket holds (at most MAX_BATCH datagrams)."""
        sock, handler, peer = self.sock, self.handler, self.peer
        try:
            if peer is None:
                for _ in range(MAX_BATCH):
                    data, addr = sock.recvfrom(RECV_SIZE)
                    handler(data, addr)
            else:
                for _ in range(MAX_BATCH):
                    handler(sock.recv(RECV_SIZE), peer)
        except (BlockingIOError, InterruptedError):
            self.peer = self.connected  # empty: nothing queued before a connect is left
            return
        except OSError as exc:
            self.failed(exc)

    def connect(self, peer: Address) -> None:
        """From now on only `peer`'s datagrams reach this socket (the kernel drops the rest)."""
        try:
            self.sock.connect(peer)
        except OSError as exc:
            log.warning("cannot connect UDP port %d to %s:%d: %s", self.port, peer[0], peer[1], exc)
            return
        self.connected = peer  # read with `recv` once found empty (see the module's docstring)
        if self._poller is not None:
            self._poller.connecting.append(self)

    def sendto(self, data: bytes, addr: Address) -> bool:
        """Send one datagram without blocking; False when the kernel refused it now."""
        try:
            self.sock.sendto(data, addr)
        except OSError as exc:
            self.errors += 1
            log.debug("UDP port %d: cannot send to %s:%d: %s", self.port, addr[0], addr[1], exc)
            return False
        return True

    def close(self) -> None:
        if self.sock.fileno() < 0:
            return
        if self._poller is not None:
            self._poller.remove(self)
        else:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
