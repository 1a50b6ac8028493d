"""A real Janus 1.1.2 for tests: config files in a scratch folder, a process on 127.0.0.1, clean teardown.

Reusable by any test (``import janus_fixture``; ``tests/`` is on ``pythonpath``)::

    server = JanusServer(tmp_path, session_timeout=5, sampleevh_url="http://127.0.0.1:PORT/evh")
    server.start()          # writes configs, starts janus, waits until the WebSocket API answers
    server.ws_url           # ws://127.0.0.1:PORT      (subprotocol janus-protocol)
    server.admin_url        # ws://127.0.0.1:PORT      (subprotocol janus-admin-protocol)
    server.kill(); server.start()   # crash and restart on the same ports
    server.stop()

For real WebRTC (ICE never works on loopback) run it in a network namespace (``tests/helpers/netns.py``):
``JanusServer(tmp, ice_enforce_list="jv0", videocodec="vp8,h264")`` started by a thread that is inside the
namespace (``ns.entered()``), or ``netns=NAME`` to start it with ``ip netns exec NAME`` from outside.
The API stays on 127.0.0.1 inside the namespace.

Configs follow ``/work/shared/reference/janus/etc``: VideoRoom with ``admin_key`` and ``lock_rtp_forward``,
one static room (``ROOM`` with ``ROOM_SECRET``), HTTP/other transports and unused plugins disabled.
ICE is not available on loopback: API calls work here; media needs the network-namespace recipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from janus_bridge.client import VIDEOROOM_PLUGIN, JanusClient, PluginHandle
from janus_bridge.transport import Backoff

LIB_DIR = Path("/usr/lib/x86_64-linux-gnu/janus")
ADMIN_SECRET = "janusoverlord"
ADMIN_KEY = "supersecret"
ROOM = 1234
ROOM_SECRET = "adminpwd"
FAST_BACKOFF = Backoff(initial=0.05, maximum=0.5, jitter=0.2)
"""Reconnect quickly in tests (production default: 0.5 s doubling to 30 s)."""

_DISABLED_PLUGINS = ",".join(
    f"libjanus_{name}.so"
    for name in (
        "voicemail",
        "recordplay",
        "sip",
        "nosip",
        "lua",
        "duktape",
        "audiobridge",
        "streaming",
        "textroom",
        "videocall",
        "echotest",
    )
)


def janus_binary() -> str | None:
    """Path of the ``janus`` executable with its VideoRoom plugin installed, or None."""
    exe = shutil.which("janus")
    if exe is None or not (LIB_DIR / "plugins" / "libjanus_videoroom.so").exists():
        return None
    return exe


FREE_PORTS = range(10000, 20000)
"""Where `free_port` picks: below the kernel's ephemeral range (32768 and up here) and Janus's RTP range
(20000-40000 in these tests), so no outgoing connection and no media socket can take the port."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 a moment ago, for a server a test starts later (also free for UDP in
    practice). Not one the kernel hands out for outgoing connections: a client that retries connecting
    to it before its server listens (Janus's event handler does) could otherwise get that very port as
    its own local port (a TCP self-connect) and keep the server from binding it."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.choice(FREE_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port in {FREE_PORTS}")


def free_udp_port_pair() -> int:
    """An even UDP port whose successor is free as well (RTP + RTCP)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1]) & ~1
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s1,
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s2,
            ):
                s1.bind(("127.0.0.1", port))
                s2.bind(("127.0.0.1", port + 1))
                return port
        except OSError:
            continue
    raise RuntimeError("no free UDP port pair")


class JanusStartError(RuntimeError):
    """Janus did not come up; the message carries the tail of its log."""


def start_or_skip(server: JanusServer) -> JanusServer:
    """``server.start()``, or ``pytest.skip`` with the reason when Janus is not installed or cannot run."""
    import pytest

    if janus_binary() is None:
        pytest.skip("janus is not installed: apt-get install -y janus janus-tools")
    try:
        server.start()
    except JanusStartError as exc:
        pytest.skip(f"janus cannot run here: {exc}")
    return server


@dataclass
class JanusServer:
    """One Janus process with its own config folder under ``workdir``."""

    workdir: Path
    session_timeout: int = 60
    sampleevh_url: str | None = None
    sampleevh_user: str | None = None
    sampleevh_password: str | None = None
    wsevh_url: str | None = None
    event_types: str = "all"
    admin_key: str = ADMIN_KEY
    lock_rtp_forward: bool = True
    room: int = ROOM
    room_secret: str = ROOM_SECRET
    admin_secret: str = ADMIN_SECRET
    ws_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    debug_level: int = 4
    start_timeout: float = 10.0
    ice_enforce_list: str | None = None
    """``nat.ice_enforce_list``: interfaces/addresses Janus gathers ICE candidates on (e.g. "jv0")."""
    videocodec: str = "vp8"
    """The static room's ``videocodec`` list, e.g. "vp8,h264"."""
    record: bool = False
    """The static room records every publisher natively (.mjr files in ``workdir/rec``)."""
    netns: str | None = None
    """Run Janus in this network namespace (``ip netns exec``); its API is then on 127.0.0.1 there."""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "etc"

    @property
    def log_path(self) -> Path:
        return self.workdir / "janus.log"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def admin_url(self) -> str:
        return f"ws://127.0.0.1:{self.admin_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- configuration -------------------------------------------------------------------------------

    def write_config(self) -> None:
        conf = self.conf_dir
        conf.mkdir(parents=True, exist_ok=True)
        (self.workdir / "rec").mkdir(exist_ok=True)
        evh_enabled = self.sampleevh_url is not None or self.wsevh_url is not None
        enforce = f"\tice_enforce_list = {_q(self.ice_enforce_list)}\n" if self.ice_enforce_list else ""
        (conf / "janus.jcfg").write_text(
            "general: {\n"
            f'\tconfigs_folder = "{conf}"\n'
            f'\tplugins_folder = "{LIB_DIR / "plugins"}"\n'
            f'\ttransports_folder = "{LIB_DIR / "transports"}"\n'
            f'\tevents_folder = "{LIB_DIR / "events"}"\n'
            f'\tloggers_folder = "{LIB_DIR / "loggers"}"\n'
            f"\tdebug_level = {self.debug_level}\n"
            "\tdebug_timestamps = true\n"
            f"\tadmin_secret = {_q(self.admin_secret)}\n"
            '\tserver_name = "janus-test"\n'
            f"\tsession_timeout = {self.session_timeout}\n"
            "}\n"
            "certificates: {\n}\n"
            'media: {\n\trtp_port_range = "20000-40000"\n}\n'
            "nat: {\n\tnice_debug = false\n\tignore_mdns = true\n"
            f"{enforce}"
            "}\n"
            f'plugins: {{\n\tdisable = "{_DISABLED_PLUGINS}"\n}}\n'
            "transports: {\n"
            '\tdisable = "libjanus_http.so,libjanus_mqtt.so,libjanus_nanomsg.so,'
            'libjanus_pfunix.so,libjanus_rabbitmq.so"\n'
            "}\n"
            'loggers: {\n\tdisable = "libjanus_jsonlog.so"\n}\n'
            "events: {\n"
            f"\tbroadcast = {_b(evh_enabled)}\n"
            "\tstats_period = 5\n"
            '\tdisable = "libjanus_gelfevh.so,libjanus_mqttevh.so,libjanus_nanomsgevh.so,'
            'libjanus_rabbitmqevh.so"\n'
            "}\n"
        )
        (conf / "janus.transport.websockets.jcfg").write_text(
            "general: {\n"
            '\tjson = "compact"\n'
            "\tws = true\n"
            f"\tws_port = {self.ws_port}\n"
            '\tws_ip = "127.0.0.1"\n'
            "\twss = false\n"
            "}\n"
            "admin: {\n"
            "\tadmin_ws = true\n"
            f"\tadmin_ws_port = {self.admin_port}\n"
            '\tadmin_ws_ip = "127.0.0.1"\n'
            "\tadmin_wss = false\n"
            "}\n"
            "cors: {\n}\ncertificates: {\n}\n"
        )
        admin_key = f"\tadmin_key = {_q(self.admin_key)}\n" if self.admin_key else ""
        (conf / "janus.plugin.videoroom.jcfg").write_text(
            "general: {\n"
            f"{admin_key}"
            f"\tlock_rtp_forward = {_b(self.lock_rtp_forward)}\n"
            "\tevents = true\n"
            "}\n"
            f"room-{self.room}: {{\n"
            '\tdescription = "Test Room"\n'
            f"\tsecret = {_q(self.room_secret)}\n"
            "\tpublishers = 6\n"
            "\tbitrate = 512000\n"
            "\tfir_freq = 10\n"
            '\taudiocodec = "opus"\n'
            f"\tvideocodec = {_q(self.videocodec)}\n"
            f"\trecord = {_b(self.record)}\n"
            f'\trec_dir = "{self.workdir / "rec"}"\n'
            "}\n"
        )
        sample = conf / "janus.eventhandler.sampleevh.jcfg"
        if self.sampleevh_url is not None:
            auth = ""
            if self.sampleevh_user is not None:
                password = self.sampleevh_password or ""
                auth = f"\tbackend_user = {_q(self.sampleevh_user)}\n\tbackend_pwd = {_q(password)}\n"
            sample.write_text(
                "general: {\n"
                "\tenabled = true\n"
                f"\tevents = {_q(self.event_types)}\n"
                "\tgrouping = true\n"
                '\tjson = "compact"\n'
                f"\tbackend = {_q(self.sampleevh_url)}\n"
                f"{auth}"
                "\tmax_retransmissions = 3\n"
                "\tretransmissions_backoff = 50\n"
                "}\n"
            )
        else:
            sample.write_text("general: {\n\tenabled = false\n}\n")
        wsevh = conf / "janus.eventhandler.wsevh.jcfg"
        if self.wsevh_url is not None:
            wsevh.write_text(
                "general: {\n"
                "\tenabled = true\n"
                f"\tevents = {_q(self.event_types)}\n"
                "\tgrouping = true\n"
                '\tjson = "compact"\n'
                f"\tbackend = {_q(self.wsevh_url)}\n"
                '\tsubprotocol = "janus-event-handlers"\n'
                "}\n"
            )
        else:
            wsevh.write_text("general: {\n\tenabled = false\n}\n")

    # -- process -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Write configs, start Janus, wait until its WebSocket API answers an ``info`` request."""
        exe = janus_binary()
        if exe is None:
            raise JanusStartError("janus is not installed (apt-get install -y janus janus-tools)")
        if self.running:
            return
        self.write_config()
        cmd = [exe, "-F", str(self.conf_dir), "-C", str(self.conf_dir / "janus.jcfg")]
        cmd += ["-L", str(self.log_path), "-e", "-o"]
        if self.netns is not None:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        self.process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise JanusStartError(f"janus exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise JanusStartError(f"janus did not answer within {self.start_timeout} s:\n{self.log_tail()}")

    def _answers(self) -> bool:
        if self.netns is not None:
            return _in_netns(self.netns, self._answers_here)
        return self._answers_here()

    def _answers_here(self) -> bool:
        from websockets.sync.client import connect

        try:
            with connect(self.ws_url, subprotocols=["janus-protocol"], open_timeout=1) as ws:  # type: ignore[list-item]
                ws.send(json.dumps({"janus": "info", "transaction": "ready"}))
                reply = json.loads(ws.recv(timeout=1))
                return bool(reply.get("janus") == "server_info")
        except Exception:  # not up yet: refused, reset, timeout, half-started
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if Janus does not exit in ``timeout`` seconds."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> JanusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _in_netns(netns: str, check: Callable[[], bool]) -> bool:
    """``check()`` on a short-lived thread moved into network namespace ``netns`` (setns is per thread)."""
    import ctypes
    import threading

    result = [False]

    def run() -> None:
        fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
        try:
            if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                return
        finally:
            os.close(fd)
        result[0] = check()

    thread = threading.Thread(target=run, name=f"janus-ready-{netns}")
    thread.start()
    thread.join()
    return result[0]


def _q(value: str) -> str:
    return json.dumps(value)


def _b(value: bool) -> str:
    return "true" if value else "false"


_FINGERPRINT = (
    "a=fingerprint:sha-256 93:0A:0E:90:A0:CB:2D:C7:22:E4:C2:7C:27:E5:8D:BD:"
    "7A:AD:C6:4C:3D:E8:36:42:28:19:84:A7:E4:4E:CF:EB"
)

# A publisher offer (opus mid 0, VP8 mid 1) taken from a real aiortc offer (reference events). Janus accepts
# it and creates the publisher's streams; ICE never completes on loopback, which API tests do not need.
PUBLISHER_OFFER_SDP = (
    "v=0\r\n"
    "o=- 4004884276 4004884276 IN IP4 0.0.0.0\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0 1\r\n"
    "a=msid-semantic:WMS *\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 96\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=sendrecv\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
    "a=mid:0\r\n"
    "a=msid:45b3cfb4 083d8c93\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=rtcp-mux\r\n"
    "a=ssrc:294818969 cname:test\r\n"
    "a=rtpmap:96 opus/48000/2\r\n"
    "a=ice-ufrag:mUaT\r\n"
    "a=ice-pwd:vz47TnuPn7PqqFkw1UMp2e\r\n"
    f"{_FINGERPRINT}\r\n"
    "a=setup:actpass\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 97\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=sendrecv\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
    "a=mid:1\r\n"
    "a=msid:45b3cfb4 bdf06749\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=rtcp-mux\r\n"
    "a=ssrc:2655473051 cname:test\r\n"
    "a=rtpmap:97 VP8/90000\r\n"
    "a=rtcp-fb:97 nack\r\n"
    "a=rtcp-fb:97 nack pli\r\n"
    "a=rtcp-fb:97 goog-remb\r\n"
    "a=ice-ufrag:mUaT\r\n"
    "a=ice-pwd:vz47TnuPn7PqqFkw1UMp2e\r\n"
    f"{_FINGERPRINT}\r\n"
    "a=setup:actpass\r\n"
)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0, step: float = 0.05) -> None:
    """Poll ``check()`` until it is true; AssertionError after ``within`` seconds. For Janus state that
    changes asynchronously (a participant leaving after its handle was detached...)."""
    for _ in range(max(1, int(within / step))):
        if await check():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"condition still false after {within} s")


async def join_fake_publisher(
    client: JanusClient, room: int = ROOM, display: str = "fake"
) -> tuple[PluginHandle, int]:
    """Join ``room`` as a publisher and publish ``PUBLISHER_OFFER_SDP`` (opus mid "0", VP8 mid "1").

    ``client`` is a connected ``janus_bridge.JanusClient``. Returns (handle, publisher id). Janus creates
    the publisher's streams from the offer, so ``rtp_forward`` works; no media flows (no ICE on loopback),
    and Janus drops the publisher when the handle is detached or its session goes away.
    """
    handle = await client.attach(VIDEOROOM_PLUGIN, opaque_id=f"test-{display}")
    joined = await handle.message({"request": "join", "ptype": "publisher", "room": room, "display": display})
    publisher_id = int(joined.data["id"])
    await handle.message({"request": "publish"}, {"type": "offer", "sdp": PUBLISHER_OFFER_SDP})
    return handle, publisher_id
