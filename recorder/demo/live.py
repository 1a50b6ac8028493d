"""The live demo (`callvault demo`): Janus in a network namespace, two aiortc publishers, `callvault serve`
with the archive (local store, signed manifest, webhooks) and a composite, a webhook receiver that checks
signatures, then `callvault public-key` and `callvault verify --public-key` on what was stored.

Everything runs in the namespace (this thread enters it; the service's sockets, Janus, the publishers
and the composite workers live there), on 127.0.0.1 or the namespace's veth. Only the API is reachable
from the host: a listening socket made on the host's 127.0.0.1 before entering, whose connections are
relayed to the service's port inside.

`out/` holds callvault.toml (the service's configuration, usable with `callvault serve --config` and
`callvault public-key --config`), the signing key, data/ (catalog, spool, outbox), store/ (the local
object store) and janus/ (its configuration and log)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from recorder import logs
from recorder.demo import lab
from recorder.webhooks import WebhookEvent, generate_secret, verify
from recorder.webhooks.events import CompositeFinished, RecordingFinished

API_PORT = 8080  # inside the namespace
WEBHOOK_PORT = 9000
EVENTS_TOKEN_BYTES = 24
LATE = 1.0
"""Seconds after the first publisher that the second joins; it leaves this much earlier too."""


@dataclass
class Delivery:
    event: WebhookEvent
    webhook_id: str
    verified: bool
    error: str | None = None


@dataclass
class Receiver:
    """A webhook endpoint on 127.0.0.1 that checks each request's Standard Webhooks signature."""

    secret: str
    deliveries: list[Delivery] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            verify(self.secret, headers, body)
        except Exception as exc:  # any failure: reported, the delivery refused
            error: str | None = str(exc) or type(exc).__name__
        else:
            error = None
        self.deliveries.append(
            Delivery(
                WebhookEvent.model_validate_json(body), headers.get("webhook-id", ""), error is None, error
            )
        )
        self.changed.set()
        return web.Response(status=204 if error is None else 401)

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def wait_for(self, *kinds: str, within: float) -> Delivery:
        """The first delivery of one of these event types; LabError after `within` seconds."""
        try:
            return await asyncio.wait_for(self._first(kinds), within)
        except TimeoutError:
            raise lab.LabError(f"no {' or '.join(kinds)} webhook within {within:g} s") from None

    async def _first(self, kinds: tuple[str, ...]) -> Delivery:
        while True:
            for d in self.deliveries:
                if d.event.type.value in kinds:
                    return d
            self.changed.clear()
            await self.changed.wait()


class Relay:
    """Connections to a host socket (made outside the namespace) relayed to 127.0.0.1:`port` inside."""

    def __init__(self, listening: socket.socket, port: int) -> None:
        self.listening = listening
        self.port = port
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, sock=self.listening)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 2)


def host_socket(port: int) -> socket.socket:
    """A listening TCP socket on the host's 127.0.0.1 (`port`, or any free one when taken or 0)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


def _toml(value: str) -> str:
    return json.dumps(value)


def write_config(out: Path, janus: lab.Janus, events_token: str, api_key: str, webhook_secret: str) -> Path:
    """The service's configuration, as a user would write it (callvault.toml)."""
    config = out / "callvault.toml"
    config.write_text(
        "# Written by `callvault demo`: the service it ran, inside its network namespace.\n"
        f"data_dir = {_toml(str(out / 'data'))}\n"
        'http_host = "127.0.0.1"\n'
        f"http_port = {API_PORT}\n"
        'rtp_bind = "127.0.0.1"\n'
        "rtp_port_min = 42000\n"
        "rtp_port_max = 42999\n"
        "\n[api]\n"
        f"admin_key = {_toml(api_key)}\n"
        "\n[recorder]\n"
        "segment_seconds = 2.0\n"
        "capture = true  # every RTP/RTCP packet as received: <track>.capture/*.pcapng (docs/forensics.md)\n"
        "\n[janus]\n"
        f"ws_url = {_toml(janus.ws_url)}\n"
        f"admin_key = {_toml(janus.admin_key)}\n"
        f"room_secret = {_toml(janus.room_secret)}\n"
        f"events_token = {_toml(events_token)}\n"
        "empty_room_grace = 1.0\n"
        "\n[archive]\n"
        "completion_poll = 0.2\n"
        "\n[archive.storage]\n"
        'backend = "local"\n'
        "\n[archive.storage.local]\n"
        f"root = {_toml(str(out / 'store'))}\n"
        "\n[archive.signing]\n"
        f"key_file = {_toml(str(out / 'signing-key.pem'))}\n"
        'key_env = "CALLVAULT_DEMO_SIGNING_KEY"\n'
        "\n[archive.spool]\n"
        "poll_interval = 0.1\n"
        "\n[archive.webhooks]\n"
        "poll_interval = 0.1\n"
        "\n[[archive.webhooks.endpoints]]\n"
        'id = "demo"\n'
        f'url = "http://127.0.0.1:{WEBHOOK_PORT}/hook"\n'
        f"secret = {_toml(webhook_secret)}\n"
        "\n[composite]\n"
        'profiles = ["sd"]\n'
        "\n[transcripts]\n"
        "enabled = true  # transcript.json/.vtt in the manifest's next revision, searchable (q=)\n"
    )
    config.chmod(0o600)  # it holds secrets
    return config


async def until(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise lab.LabError(f"{what} within {within:g} s")
        await asyncio.sleep(0.1)


class Publisher:
    """`python -m recorder.demo.publisher` as a subprocess (started inside the namespace)."""

    def __init__(self, proc: asyncio.subprocess.Process, display: str) -> None:
        self.proc = proc
        self.display = display
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, janus: lab.Janus, display: str, seconds: float, tone: float) -> Publisher:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recorder.demo.publisher", "--ws", janus.ws_url, "--room", str(lab.ROOM),
            "--display", display, "--seconds", str(seconds), "--tone", str(tone),
            "--ice-address", lab.ADDRESS,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        return cls(proc, display)

    async def finish(self, within: float) -> dict[str, Any]:
        try:
            out, err = await asyncio.wait_for(self.proc.communicate(), within)
        except TimeoutError:
            self.kill()
            raise lab.LabError(f"publisher {self.display} still running after {within:g} s") from None
        self.events = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
        done = next((e for e in self.events if e.get("event") == "done"), None)
        if self.proc.returncode != 0 or done is None:
            raise lab.LabError(f"publisher {self.display} failed:\n{err.decode(errors='replace')[-2000:]}")
        return done

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The `callvault` command line as a subprocess, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ffprobe_summary(path: Path) -> str:
    info = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height:format=duration",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    try:
        doc = json.loads(info.stdout)
    except ValueError:
        return f"ffprobe failed: {info.stderr.strip()}"
    streams = ", ".join(
        s["codec_name"] + (f" {s['width']}x{s['height']}" if "width" in s else "") for s in doc["streams"]
    )
    return f"{streams}, {float(doc['format']['duration']):.1f} s"


def say(text: str = "") -> None:
    print(text, flush=True)


async def live(args: argparse.Namespace, listening: socket.socket, namespace: str) -> int:
    from recorder.commands.serve import serve  # noqa: PLC0415 - heavy, only once the lab is up
    from recorder.service.settings import load_settings  # noqa: PLC0415

    out: Path = args.out.resolve()
    events_token = secrets.token_urlsafe(EVENTS_TOKEN_BYTES)
    api_key = "demo-" + secrets.token_urlsafe(32)
    receiver = Receiver(generate_secret())
    janus = lab.Janus(out / "janus", f"http://127.0.0.1:{API_PORT}/janus/events?token={events_token}")
    config = write_config(out, janus, events_token, api_key, receiver.secret)
    settings = load_settings(config)
    call = float(args.call_seconds)

    stop = asyncio.Event()
    relay = Relay(listening, API_PORT)
    publishers: list[Publisher] = []
    service: asyncio.Task[None] | None = None
    base = f"http://127.0.0.1:{API_PORT}"
    host_port = listening.getsockname()[1]
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for sig in (signal.SIGINT, signal.SIGTERM):  # until the summary: stop everything, clean up
        loop.add_signal_handler(sig, main.cancel)
    try:
        await receiver.start(WEBHOOK_PORT)
        say(f"network namespace {namespace}: Janus and CallVault on its 127.0.0.1, ICE on {lab.ADDRESS}")
        say("starting callvault serve first, then Janus (serve connects to Janus once it is up)")
        service = asyncio.create_task(serve(settings, stop, signals=False), name="callvault-serve")
        async with ClientSession(
            headers={"Authorization": f"Bearer {api_key}"}, timeout=ClientTimeout(total=10)
        ) as http:

            async def answers(path: str) -> bool:
                if service is not None and service.done():
                    service.result()  # raises what stopped it
                    raise lab.LabError("callvault serve stopped")
                try:
                    async with http.get(base + path) as response:
                        return response.status == 200
                except (ClientError, TimeoutError):
                    return False

            await until(lambda: answers("/healthz"), 60, "callvault serve did not answer")
            janus.spawn()  # after CallVault listens: no Janus event is lost

            async def janus_listens() -> bool:
                return janus.listening()

            await until(janus_listens, 30, "Janus did not listen")
            say(f"Janus {janus.ws_url} (log {janus.log_path}) -> events to callvault serve {base}")
            await until(lambda: answers("/readyz"), 60, "callvault serve was not ready (Janus connection)")
            await relay.start()
            say(f"callvault serve ready; its API is forwarded to http://127.0.0.1:{host_port} on this host")

            say(f"\ncall: two publishers (aiortc, VP8 + Opus) in room {lab.ROOM} for about {call:g} s ...")
            for display, delay, tone in (("Alice", 0.0, 440.0), ("Bob", LATE, 660.0)):
                await asyncio.sleep(delay)
                seconds = max(1.0, call - 2 * delay)
                publishers.append(await Publisher.start(janus, display, seconds, tone))
            sent = {p.display: await p.finish(within=call + 60) for p in publishers}

            started = await receiver.wait_for("recording.started", within=60)
            finished = await receiver.wait_for("recording.finished", "recording.failed", within=90)
            say("call over, recording stored; waiting for the composite (built in a worker process) ...")
            composite = await receiver.wait_for("composite.finished", "composite.failed", within=240)

            recording_id = started.event.data.recording_id
            async with http.get(f"{base}/v1/recordings/{recording_id}") as response:
                detail = await response.json() if response.status == 200 else {}
        summary_ok = report(sent, receiver, finished, composite, detail, settings)

        public = out / "signing-key.pub"
        key = await asyncio.to_thread(cli, "public-key", "--config", str(config))
        if key.returncode == 0:
            public.write_text(key.stdout)
        store = out / "store"
        checked = await asyncio.to_thread(
            cli, "verify", recording_id, "--root", str(store), "--public-key", str(public)
        )
        say("\nsigning key:")
        say(f"  $ callvault public-key --config {config} > {public}")
        say(f"  {key.stdout.strip().splitlines()[1] if key.returncode == 0 else key.stderr.strip()} ...")
        say("verify:")
        say(f"  $ callvault verify {recording_id} --root {store} --public-key {public}")
        for line in (checked.stdout + checked.stderr).strip().splitlines():
            say(f"  {line}")
        ok = summary_ok and key.returncode == 0 and checked.returncode == 0
        say(f"\ncallvault verify: {'OK' if checked.returncode == 0 else 'FAILED'}")

        say("\nthe service keeps running with its API on this host:")
        say(f"  curl -H 'Authorization: Bearer {api_key}' http://127.0.0.1:{host_port}/v1/recordings")
        say(f"  curl http://127.0.0.1:{host_port}/v1/openapi.json   (the API's OpenAPI document)")
        say(f"  curl -H 'Authorization: Bearer {api_key}' http://127.0.0.1:{host_port}/v1/signing-key")
        for sig in (signal.SIGINT, signal.SIGTERM):  # from now on: stop the service as serve does
            loop.add_signal_handler(sig, stop.set)
        if args.seconds is None:
            say("Ctrl-C to stop.")
            await stop.wait()
        else:
            say(f"stopping in {args.seconds:g} s (--seconds).")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.seconds)
        say("stopping ...")
        return 0 if ok else 1
    finally:
        for p in publishers:
            p.kill()
        stop.set()
        if service is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(service, 60)
        await relay.stop()
        await asyncio.to_thread(janus.stop)
        await receiver.stop()


def report(
    sent: dict[str, dict[str, Any]],
    receiver: Receiver,
    finished: Delivery,
    composite: Delivery,
    detail: dict[str, Any],
    settings: Any,
) -> bool:
    """Print what happened; True when every track is complete and every webhook verified."""
    data = finished.event.data
    if not isinstance(data, RecordingFinished):
        say(f"\nthe recording failed: {finished.event.model_dump_json()}")
        return False
    manifest = data.manifest
    say(f"\nrecording {data.recording_id} (room {data.room_id}), manifest revision {manifest.revision}")
    say("participants:")
    for participant in manifest.participants:
        frames = next((s["frames"] for d, s in sent.items() if d == participant.display_name), None)
        say(f"  {participant.id}  {participant.display_name}  (sent {frames} video frames)")
    say("tracks:")
    ok = True
    names = {p.id: p.display_name for p in manifest.participants}
    order = {p.id: i for i, p in enumerate(manifest.participants)}
    for track in sorted(manifest.tracks, key=lambda t: (order.get(t.participant_id or "", 99), t.name)):
        who = names.get(track.participant_id or "", track.participant_id)
        size = f" {track.width}x{track.height}" if track.width else ""
        duration = f"{track.duration:.1f} s" if track.duration is not None else "?"
        say(
            f"  {track.file}  {who}: {track.codec.value}{size}, {track.frames} frames"
            f" ({track.keyframes} keyframes), {duration}, {track.packets_lost} packets lost, {track.state}"
        )
        ok = ok and track.state == "complete"
    event = composite.event.data
    store_root = Path(settings.archive.storage.local.root)
    say("composite:")
    if isinstance(event, CompositeFinished):
        path = store_root / event.object.key
        say(f"  {path}  ({event.object.size} bytes): {ffprobe_summary(path)}")
    else:
        say(f"  FAILED: {composite.event.model_dump_json()}")
        ok = False
    if detail:
        say(f"  GET /v1/recordings/{data.recording_id}: status {detail.get('status')}, manifest revision"
            f" {detail.get('manifest', {}).get('revision')}")  # fmt: skip
    say("webhooks received (Standard Webhooks signature checked with the endpoint's secret):")
    for d in receiver.deliveries:
        verdict = "signature verified" if d.verified else f"signature REJECTED: {d.error}"
        say(f"  {d.event.type.value:<20} {d.webhook_id}  {verdict}")
        ok = ok and d.verified
    stored = next((o for o in manifest.objects if o.name == "manifest.json" or "/" not in o.name), None)
    if stored is not None:
        folder = store_root / stored.key[: -len(stored.name)]
        say(f"stored under {folder}:")
        for file in sorted(folder.iterdir()):
            if file.is_file():
                say(f"  {file.name}  ({file.stat().st_size} bytes)")
    return ok


def run_live(args: argparse.Namespace) -> int:
    reason = lab.missing()
    if reason is None and importlib.util.find_spec("aiortc") is None:
        reason = "the demo needs aiortc: pip install 'callvault[demo]' (make demo installs it)"
    if reason is not None:
        print(f"callvault: error: {reason}; `callvault demo --rtp` needs neither", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    logs.configure(logs.requested(args)[0] or "warning", logs.requested(args)[1] or "text")
    namespace = lab.Namespace()
    try:
        namespace.create()
    except lab.LabError as exc:
        print(f"callvault: error: cannot create a network namespace: {exc}", file=sys.stderr)
        return 2
    try:
        listening = host_socket(args.api_port)  # on the host, before entering the namespace
        with namespace.entered(), listening:
            return asyncio.run(live(args, listening, namespace.name))
    except lab.LabError as exc:
        print(f"callvault: error: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("callvault demo: interrupted", file=sys.stderr)
        return 130
    finally:
        namespace.delete()
