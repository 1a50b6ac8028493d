"""A UDP socket read straight off the event loop's selector, many datagrams per wakeup.

asyncio's datagram transport reads one datagram per readiness callback into a 256 KiB buffer and goes
through a protocol object; at a few hundred thousand packets per second of a recorder that is most of
the CPU. `DatagramSocket` registers the socket's descriptor with `loop.add_reader` and, on each
readiness, drains up to `MAX_BATCH` datagrams into `RECV_SIZE`-byte buffers and hands each to `handler`.
Once `connect()`ed to its one sender, it reads with `recv` (no address to build per packet: the kernel
only delivers that sender's datagrams).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

Address = tuple[str, int]
Handler = Callable[[bytes, Address], None]

RECV_SIZE = 4096
"""Bytes read per datagram: RTP from an SFU stays under the path MTU (about 1,500 bytes)."""
MAX_BATCH = 64
"""Datagrams read per wakeup before the loop serves other sockets (fairness)."""
RECEIVE_BUFFER = 1 << 20
"""SO_RCVBUF asked for each socket: room for a keyframe's burst (or a busy moment of the event loop)
without the kernel dropping datagrams; the kernel caps it at net.core.rmem_max (raise that sysctl on hosts
where it is lower) and only uses the memory when datagrams wait."""


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
        self.handler = handler
        self.peer: Address | None = None
        self.errors = 0
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def _readable(self) -> None:
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
            return
        except OSError as exc:  # an ICMP error for something we sent (a PLI to a closed port)
            self.errors += 1
            log.debug("UDP port %d: %s", self.port, exc)

    def connect(self, peer: Address) -> None:
        """From now on only `peer`'s datagrams reach this socket (the kernel drops the rest)."""
        try:
            self.sock.connect(peer)
        except OSError as exc:
            log.warning("cannot connect UDP port %d to %s:%d: %s", self.port, peer[0], peer[1], exc)
            return
        self.peer = peer

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
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
