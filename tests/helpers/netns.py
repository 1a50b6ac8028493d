"""A private network namespace for WebRTC tests (ICE never works on loopback; see
/work/shared/reference/janus/README.md).

Each ``NetNamespace`` is uniquely named (``cv<pid>x<random>``) and holds ``lo`` (up) and a veth pair made
inside it: ``jv0`` = ``10.200.X.1/24`` and its peer ``jv1`` (up, no address), IPv6 off. Nothing in it
reaches the host's network: traffic stays on loopback or on ``jv0`` inside the namespace.

Two ways to run things inside it, both used by ``tests/e2e_webrtc``:

* subprocesses: ``ns.popen([...])`` / ``ns.run([...])`` / ``ns.exec_args([...])`` prefix the command with
  ``ip netns exec NAME`` (the aiortc publisher runs this way, as its own process: ``webrtc.py``);
* the calling **thread** itself: ``with ns.entered(): ...`` calls ``setns(2)`` on the current thread (a
  network namespace is per thread on Linux) and restores the previous one on exit. Sockets keep the
  namespace they were created in; threads and subprocesses started while inside inherit it. Tests enter
  the namespace on the main thread (the pytest-asyncio loop's thread) for the whole test, so the
  RecordingSession's UDP sockets, the Janus WebSocket client and Janus itself (started with
  ``subprocess.Popen``) all live in the namespace with no further care.

    with network_namespace() as ns:          # pytest.skip unless root with iproute2 and CAP_SYS_ADMIN
        ns.address                           # "10.200.X.1"
        with ns.entered():
            ...                              # this thread now sees only lo and jv0/jv1

As a pytest fixture: ``netns_for_test`` in ``tests/e2e_webrtc/conftest.py``.

Requires root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and ``ip`` from iproute2; otherwise ``require_netns()``
skips with the reason. ``cleanup_stale()`` removes namespaces left behind by killed test processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NETNS_DIR = Path("/var/run/netns")
PREFIX = "cv"
VETH = "jv0"
VETH_PEER = "jv1"
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    """The namespace could not be made or entered; the message says why."""


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be used here, or None if they probably can."""
    if os.geteuid() != 0:
        return "network-namespace tests need root (WebRTC/ICE does not work on loopback)"
    if shutil.which("ip") is None:
        return "network-namespace tests need `ip` from iproute2 (apt-get install -y iproute2)"
    return None


def require_netns() -> None:
    """``pytest.skip`` with a clear reason unless namespaces can be made."""
    import pytest

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=10)
    if check and proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@dataclass
class NetNamespace:
    """One network namespace with ``lo`` up and ``jv0`` = 10.200.``subnet``.1/24 (peer ``jv1``)."""

    name: str
    subnet: int = 0
    created: bool = False

    @property
    def address(self) -> str:
        """The namespace's only non-loopback address (pin ICE to it)."""
        return f"10.200.{self.subnet}.1"

    @property
    def interface(self) -> str:
        """The interface carrying ``address`` (Janus's ``nat.ice_enforce_list``)."""
        return VETH

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    # -- lifecycle -----------------------------------------------------------------------------------

    def create(self) -> None:
        """Make the namespace (the reference recipe ``netns_setup.sh``). Cleans up after a failure."""
        if not 0 <= self.subnet <= 255:
            raise ValueError(f"subnet must be 0..255, got {self.subnet}")
        _ip("netns", "add", self.name)
        self.created = True
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("-n", self.name, "link", "add", VETH, "type", "veth", "peer", "name", VETH_PEER)
            _ip("-n", self.name, "addr", "add", f"{self.address}/24", "dev", VETH)
            _ip("-n", self.name, "link", "set", VETH_PEER, "up")
            _ip("-n", self.name, "link", "set", VETH, "up")
            self.run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], check=True)
        except BaseException:
            self.delete()
            raise

    def delete(self) -> None:
        """Remove the namespace (its veth pair goes with it). Idempotent."""
        if self.created:
            _ip("netns", "del", self.name, check=False)
            self.created = False

    # -- running things inside -----------------------------------------------------------------------

    def exec_args(self, args: Sequence[str]) -> list[str]:
        """``args`` prefixed to run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, args: Sequence[str], *, check: bool = False, timeout: float = 30, **kwargs: Any) -> Any:
        """``subprocess.run`` inside the namespace (text output captured unless told otherwise)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        proc = subprocess.run(self.exec_args(args), check=False, timeout=timeout, **kwargs)
        if check and proc.returncode != 0:
            raise NetnsError(f"{' '.join(args)} in {self.name} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` inside the namespace (``ip netns exec`` execs: the pid is the command's)."""
        return subprocess.Popen(self.exec_args(args), **kwargs)

    @contextlib.contextmanager
    def entered(self) -> Iterator[NetNamespace]:
        """Move the calling thread into the namespace; back to where it was on exit.

        Only this thread moves. Sockets opened meanwhile stay in the namespace after exit; threads and
        processes started meanwhile stay there too (end them before the namespace is deleted, or they
        keep it alive unseen).
        """
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(self.path, os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield self
            finally:
                _setns(original)
        finally:
            os.close(original)

    def addresses(self) -> str:
        """``ip -br addr`` inside the namespace (for messages)."""
        return str(self.run(["ip", "-br", "addr"]).stdout)


def unique_name(prefix: str = PREFIX) -> str:
    """``<prefix><pid>x<6 hex>``: unique, and tells ``cleanup_stale`` which process owned it."""
    return f"{prefix}{os.getpid()}x{secrets.token_hex(3)}"


@contextlib.contextmanager
def network_namespace(subnet: int = 0, prefix: str = PREFIX) -> Iterator[NetNamespace]:
    """Create a uniquely named namespace, yield it, always delete it. Skips the test (``pytest.skip``)
    when not root, when ``ip`` is missing, or when the kernel/container refuses namespaces."""
    import pytest

    require_netns()
    cleanup_stale(prefix)
    ns = NetNamespace(unique_name(prefix), subnet)
    try:
        ns.create()
    except NetnsError as exc:
        pytest.skip(f"cannot create a network namespace here: {exc}")
    try:
        yield ns
    finally:
        ns.delete()


def cleanup_stale(prefix: str = PREFIX) -> list[str]:
    """Delete namespaces named by ``unique_name(prefix)`` whose owning process is gone."""
    removed: list[str] = []
    if not NETNS_DIR.is_dir():
        return removed
    for entry in NETNS_DIR.iterdir():
        name = entry.name
        if not name.startswith(prefix) or "x" not in name[len(prefix) :]:
            continue
        pid_text = name[len(prefix) :].split("x", 1)[0]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
            continue  # owner alive
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                continue
        if _ip("netns", "del", name, check=False).returncode == 0:
            removed.append(name)
    return removed
