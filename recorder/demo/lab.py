"""A lab on one machine for the demo: a private network namespace (ICE never works on loopback: Janus
skips loopback interfaces when it gathers candidates) and Debian's Janus running inside it.

The namespace holds `lo` (up) and a veth pair made inside it: `jv0` = 10.200.0.1/24 and its peer `jv1`
(up, no address), IPv6 off; nothing in it reaches the host's network (the recipe of
tests/helpers/netns.py). `entered()` moves the calling thread into it (setns is per thread); sockets,
threads and processes created meanwhile live there.

Janus gets a config folder of its own: WebSocket API on 127.0.0.1 (inside the namespace), ICE on `jv0`
only, one VideoRoom (`ROOM`, with a secret and an admin key) and the sample event handler posting to
CallVault's event intake.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

NETNS_DIR = Path("/var/run/netns")
PREFIX = "cvdemo"
VETH, VETH_PEER = "jv0", "jv1"
ADDRESS = "10.200.0.1"
ROOM = 1234
_CLONE_NEWNET = 0x40000000


class LabError(RuntimeError):
    """The namespace or Janus could not be set up; the message says why and what to do."""


def missing() -> str | None:
    """What keeps the lab from running here, or None."""
    if os.geteuid() != 0:
        return "the demo needs root: Janus runs in a network namespace (ICE does not work on loopback)"
    for tool, package in (("ip", "iproute2"), ("janus", "janus"), ("ffmpeg", "ffmpeg")):
        if shutil.which(tool) is None:
            return f"the demo needs {tool} (apt-get install {package}, or `make system-deps`)"
    if janus_lib_dir() is None:
        return "the demo needs Janus's VideoRoom plugin (apt-get install janus)"
    return None


def janus_lib_dir() -> Path | None:
    """Debian's Janus module folder (/usr/lib/<triplet>/janus), with the VideoRoom plugin in it."""
    for plugin in sorted(Path("/usr/lib").glob("*/janus/plugins/libjanus_videoroom.so")):
        return plugin.parent.parent
    return None


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        raise LabError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")


def _setns(fd: int) -> None:
    if ctypes.CDLL(None, use_errno=True).setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@dataclass
class Namespace:
    name: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}x{secrets.token_hex(3)}")
    created: bool = False

    def create(self) -> None:
        _cleanup_stale()
        _ip("netns", "add", self.name)
        self.created = True
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("-n", self.name, "link", "add", VETH, "type", "veth", "peer", "name", VETH_PEER)
            _ip("-n", self.name, "addr", "add", f"{ADDRESS}/24", "dev", VETH)
            _ip("-n", self.name, "link", "set", VETH_PEER, "up")
            _ip("-n", self.name, "link", "set", VETH, "up")
            subprocess.run(
                ["ip", "netns", "exec", self.name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                check=False,
                capture_output=True,
                timeout=10,
            )
        except BaseException:
            self.delete()
            raise

    def delete(self) -> None:
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True, timeout=10)
            self.created = False

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread inside the namespace; back where it was on exit."""
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(NETNS_DIR / self.name, os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield
            finally:
                _setns(original)
        finally:
            os.close(original)


def _cleanup_stale() -> None:
    """Remove demo namespaces whose process is gone (a demo killed with SIGKILL)."""
    if not NETNS_DIR.is_dir():
        return
    for entry in NETNS_DIR.iterdir():
        pid = entry.name[len(PREFIX) :].split("x", 1)[0]
        if not entry.name.startswith(PREFIX) or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                subprocess.run(
                    ["ip", "netns", "del", entry.name], check=False, capture_output=True, timeout=10
                )


def _q(value: str) -> str:
    return json.dumps(value)


@dataclass
class Janus:
    """Debian's Janus with a config folder under `workdir`, started by a thread inside the namespace."""

    workdir: Path
    events_url: str
    ws_port: int = 8188
    admin_key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    room_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    process: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "janus.log"

    def write_config(self) -> Path:
        lib = janus_lib_dir()
        if lib is None:
            raise LabError("Janus's VideoRoom plugin is not installed (apt-get install janus)")
        conf = self.workdir / "etc"
        conf.mkdir(parents=True, exist_ok=True)
        off = ",".join(
            f"libjanus_{p}.so"
            for p in (
                "voicemail", "recordplay", "sip", "nosip", "lua", "duktape", "audiobridge", "streaming",
                "textroom", "videocall", "echotest",
            )
        )  # fmt: skip
        (conf / "janus.jcfg").write_text(
            "general: {\n"
            f"\tconfigs_folder = {_q(str(conf))}\n"
            f"\tplugins_folder = {_q(str(lib / 'plugins'))}\n"
            f"\ttransports_folder = {_q(str(lib / 'transports'))}\n"
            f"\tevents_folder = {_q(str(lib / 'events'))}\n"
            f"\tloggers_folder = {_q(str(lib / 'loggers'))}\n"
            "\tdebug_level = 4\n\tdebug_timestamps = true\n"
            f"\tadmin_secret = {_q(secrets.token_urlsafe(16))}\n"
            '\tserver_name = "callvault-demo"\n\tsession_timeout = 60\n'
            "}\n"
            'certificates: {\n}\nmedia: {\n\trtp_port_range = "20000-40000"\n}\n'
            f"nat: {{\n\tnice_debug = false\n\tignore_mdns = true\n\tice_enforce_list = {_q(VETH)}\n}}\n"
            f"plugins: {{\n\tdisable = {_q(off)}\n}}\n"
            "transports: {\n\tdisable = "
            '"libjanus_http.so,libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so"\n'
            "}\n"
            'loggers: {\n\tdisable = "libjanus_jsonlog.so"\n}\n'
            "events: {\n\tbroadcast = true\n\tstats_period = 5\n\tdisable = "
            '"libjanus_gelfevh.so,libjanus_mqttevh.so,libjanus_nanomsgevh.so,libjanus_rabbitmqevh.so,'
            'libjanus_wsevh.so"\n'
            "}\n"
        )
        (conf / "janus.transport.websockets.jcfg").write_text(
            "general: {\n"
            f'\tjson = "compact"\n\tws = true\n\tws_port = {self.ws_port}\n\tws_ip = "127.0.0.1"\n'
            "\twss = false\n}\nadmin: {\n\tadmin_ws = false\n\tadmin_wss = false\n}\n"
            "cors: {\n}\ncertificates: {\n}\n"
        )
        (conf / "janus.plugin.videoroom.jcfg").write_text(
            "general: {\n"
            f"\tadmin_key = {_q(self.admin_key)}\n\tlock_rtp_forward = true\n\tevents = true\n}}\n"
            f"room-{ROOM}: {{\n"
            '\tdescription = "CallVault demo"\n'
            f"\tsecret = {_q(self.room_secret)}\n"
            "\tpublishers = 6\n\tbitrate = 512000\n\tfir_freq = 10\n"
            '\taudiocodec = "opus"\n\tvideocodec = "vp8"\n'
            "}\n"
        )
        (conf / "janus.eventhandler.sampleevh.jcfg").write_text(
            "general: {\n"
            '\tenabled = true\n\tevents = "all"\n\tgrouping = true\n\tjson = "compact"\n'
            f"\tbackend = {_q(self.events_url)}\n"
            "\tmax_retransmissions = 3\n\tretransmissions_backoff = 50\n}\n"
        )
        return conf

    def spawn(self) -> None:
        """Start Janus from the thread inside the namespace, which lives as long as the demo: with setpriv
        --pdeathsig, Janus gets SIGTERM when that thread dies, even when the demo is SIGKILLed."""
        conf = self.write_config()
        exe = shutil.which("janus")
        if exe is None:
            raise LabError("janus is not installed (apt-get install janus)")
        command = [exe, "-F", str(conf), "-C", str(conf / "janus.jcfg"), "-L", str(self.log_path), "-e", "-o"]
        setpriv = shutil.which("setpriv")  # util-linux: SIGTERM to Janus when this process dies
        if setpriv is not None:
            command = [setpriv, "--pdeathsig", "TERM", *command]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def listening(self) -> bool:
        """Whether Janus's WebSocket port accepts connections; LabError if Janus exited."""
        if self.process is not None and self.process.poll() is not None:
            raise LabError(f"janus exited with {self.process.returncode}; see {self.log_path}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.ws_port)) == 0

    def stop(self, timeout: float = 5.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
