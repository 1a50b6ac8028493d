"""Configuration of `callvault serve`: a TOML file and/or environment variables.

Environment variables override the file: `CALLVAULT_<FIELD>`, nested with `__`, for example
`CALLVAULT_HTTP_PORT=8080`, `CALLVAULT_JANUS__WS_URL=ws://janus:8188`,
`CALLVAULT_RECORDER__SEGMENT_SECONDS=2`. Every field has a default; docs/configuration.md lists them all.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from postprocess.settings import CompositeSettings
from recorder.api.settings import ApiSettings
from recorder.archive.settings import ArchiveSettings
from recorder.config import RecorderSettings
from recorder.crypto.srtp import SrtpSuite
from recorder.fleet.settings import FleetSettings
from recorder.jobs.settings import ALL_ROLES, JobSettings, Role
from recorder.lifecycle.settings import LifecycleSettings
from recorder.logs import LogSettings
from recorder.transcripts.settings import TranscriptSettings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class JanusSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Follow a Janus VideoRoom and record its rooms.")
    ws_url: str = Field(default="ws://127.0.0.1:8188", description="Janus WebSocket API (janus-protocol).")
    api_secret: SecretStr | None = Field(default=None, description="Janus api_secret, if set.")
    admin_key: SecretStr | None = Field(
        default=None, description="VideoRoom admin_key, needed for rtp_forward when lock_rtp_forward is on."
    )
    room_secret: SecretStr | None = Field(
        default=None, description="Secret of every recorded room (default)."
    )
    room_secrets: dict[str, SecretStr] = Field(
        default_factory=dict, description="Per-room secrets, by room id."
    )
    record_rooms: Literal["all"] | list[str] = Field(
        default="all", description="'all', or the list of room ids to record."
    )
    forward_host: str = Field(
        default="127.0.0.1",
        description="Address Janus sends RTP to: this service's address as Janus sees it.",
    )
    forward_srtp: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Have Janus send the forwarded media as SRTP, under a fresh random key per forwarder."
        " auto: on unless forward_host is a loopback address (127.0.0.0/8, ::1, localhost), where the"
        " forward leg never leaves the machine.",
    )
    forward_srtp_suite: SrtpSuite = Field(
        default=SrtpSuite.AES_CM_128_HMAC_SHA1_80,
        description="SRTP crypto suite of the forward leg: AES_CM_128_HMAC_SHA1_80 or _32 (a shorter tag).",
    )
    events: Literal["http", "ws"] = Field(
        default="http", description="Event handler Janus uses: sampleevh (http) or wsevh (ws)."
    )
    events_token: SecretStr | None = Field(
        default=None, description="Shared secret the event handler must present (?token=, Bearer, header)."
    )
    events_basic_auth: tuple[str, SecretStr] | None = Field(
        default=None, description="HTTP basic auth (user, password) sampleevh must present."
    )
    events_open: bool = Field(
        default=False,
        description="Accept events without credentials. Only for an intake reachable from Janus alone:"
        " anyone who can post events can start and stop recordings. Logged at start and shown in /readyz.",
    )
    rtp_sources: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) Janus's forwarded RTP/RTCP comes from. Each track locks"
        " to the first valid packet from one of them and connects its sockets, so the kernel drops every"
        " other sender. Empty: the ws_url host when it is an IP address, else any address (the first valid"
        " packet locks the track).",
    )
    empty_room_grace: float = Field(
        default=3.0, ge=0, description="Seconds an empty room's recording stays open for someone to publish."
    )
    restart_grace: float = Field(
        default=60.0,
        ge=0,
        description="Seconds a room emptied by a Janus restart stays open for publishers to come back.",
    )
    video_pt: int = Field(default=96, ge=96, le=127, description="Payload type Janus forwards video with.")
    audio_pt: int = Field(default=111, ge=96, le=127, description="Payload type Janus forwards audio with.")

    @field_validator("rtp_sources")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for source in value:
            try:
                ipaddress.ip_network(source, strict=False)
            except ValueError:
                raise ValueError(f"{source!r} is not an IP address or network") from None
        return value

    def media_sources(self) -> list[IPNetwork] | None:
        """Networks RTP may come from; None: any (the first valid packet locks each track)."""
        if self.rtp_sources:
            return [ipaddress.ip_network(s, strict=False) for s in self.rtp_sources]
        host = urlsplit(self.ws_url).hostname or ""
        try:
            janus = ipaddress.ip_network(host)
        except ValueError:
            return None
        if not janus.is_loopback:
            return [janus]
        # Janus on this machine sends from loopback, or from this machine's address towards forward_host.
        networks: list[IPNetwork] = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1")]
        try:
            networks.append(ipaddress.ip_network(self.forward_host))
        except ValueError:
            return None
        return networks

    def srtp_suite(self) -> SrtpSuite | None:
        """The forward leg's SRTP suite; None: plain RTP (`forward_srtp`, auto: off on loopback only)."""
        if self.forward_srtp == "off":
            return None
        if self.forward_srtp == "auto" and is_loopback(self.forward_host):
            return None
        return self.forward_srtp_suite

    def secret_for(self, room: str) -> str | None:
        return _plain(self.room_secrets.get(room, self.room_secret))

    def admin_key_value(self) -> str | None:
        return _plain(self.admin_key)

    def api_secret_value(self) -> str | None:
        return _plain(self.api_secret)

    def events_token_value(self) -> str | None:
        return _plain(self.events_token)

    def events_basic_auth_value(self) -> tuple[str, str] | None:
        if self.events_basic_auth is None:
            return None
        user, password = self.events_basic_auth
        return user, password.get_secret_value()

    def records(self, room: str) -> bool:
        return self.record_rooms == "all" or room in self.record_rooms


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or "localhost") is this machine's loopback."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _plain(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


class IngestSettings(BaseModel):
    """The ingest API (/v1/ingest/...) an SFU integration such as the mediasoup package drives."""

    model_config = ConfigDict(extra="forbid")

    lease_seconds: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="Seconds a room registered through the ingest API stays recorded without a heartbeat"
        " from its SFU side (the package renews it every third of that); then its recording is finished.",
    )
    empty_room_grace: float = Field(
        default=5.0, ge=0, description="Seconds an ingest room with no stream left stays open for new ones."
    )
    restart_grace: float = Field(
        default=60.0,
        ge=0,
        description="After a restart: seconds a recording left open waits for its SFU side to register"
        " again (it continues as new parts) before it is finished.",
    )


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLVAULT_", env_nested_delimiter="__", extra="forbid")
    toml_file: ClassVar[Path | None] = None

    http_host: str = Field(default="0.0.0.0", description="Address of the HTTP API and event endpoints.")
    http_port: int = Field(default=8080, ge=1, le=65535)
    data_dir: Path = Field(default=Path("callvault-data"), description="Recordings and state.")
    rtp_bind: str = Field(default="0.0.0.0", description="Address the RTP/RTCP sockets bind to.")
    rtp_port_min: int = Field(default=40000, ge=1024, le=65535, description="First port of the RTP range.")
    rtp_port_max: int = Field(default=40999, ge=1024, le=65535, description="Last port of the RTP range.")
    shutdown_grace: float = Field(
        default=30.0, gt=0, description="Seconds SIGTERM waits for open recordings to be finalized."
    )
    recorder: RecorderSettings = Field(default_factory=RecorderSettings)
    janus: JanusSettings = Field(default_factory=JanusSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    ingest: IngestSettings = Field(
        default_factory=IngestSettings,
        description="Leases and grace periods of rooms recorded through the ingest API (mediasoup).",
    )
    archive: ArchiveSettings | None = Field(
        default=None,
        description="Object storage, signed manifests and webhooks for every recording (a [archive] table or"
        " CALLVAULT_ARCHIVE__* variables turn it on); absent: recordings stay in data_dir only.",
    )
    composite: CompositeSettings = Field(
        default_factory=CompositeSettings,
        description="Composites built when a recording finishes (worker processes), stored and announced.",
    )
    transcripts: TranscriptSettings = Field(
        default_factory=TranscriptSettings,
        description="Transcripts, card-number redaction: made when a recording finishes (worker processes).",
    )
    lifecycle: LifecycleSettings = Field(
        default_factory=LifecycleSettings,
        description="Retention rules and scheduled deletion, legal hold in the store, export jobs.",
    )
    log: LogSettings = Field(
        default_factory=LogSettings,
        description="Log level and format (text or JSON lines); --log-level/--log-format override them.",
    )
    roles: list[Role] = Field(
        default_factory=lambda: list(ALL_ROLES),
        min_length=1,
        description="What this node does: recorder (follows its SFU, records, uploads), api (REST API,"
        " console, metrics), worker (composites; from the job queue when the catalog is PostgreSQL).",
    )
    jobs: JobSettings = Field(
        default_factory=JobSettings,
        description="The job queue of a PostgreSQL catalog: worker concurrency, heartbeats, stalled jobs.",
    )
    fleet: FleetSettings = Field(
        default_factory=FleetSettings,
        description="The recorder fleet: this recorder's node name, its heartbeat, when a silent one is dead",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @model_validator(mode="after")
    def _port_range(self) -> ServiceSettings:
        if self.rtp_port_max - self.rtp_port_min < 3:
            raise ValueError("rtp_port_max must be at least rtp_port_min + 3 (two RTP/RTCP pairs)")
        return self

    @model_validator(mode="after")
    def _segments_for_the_archive(self) -> ServiceSettings:
        if self.archive is not None and not self.recorder.keep_segments:
            raise ValueError(
                "recorder.keep_segments = false cannot be used with the archive: every segment is stored and"
                " hash-chained in the manifest; the archive removes the local folder once everything is"
                " stored (archive.delete_local_after_upload)"
            )
        return self

    @model_validator(mode="after")
    def _event_credentials(self) -> ServiceSettings:
        j = self.janus
        if j.enabled and j.events_token is None and j.events_basic_auth is None and not j.events_open:
            raise ValueError(
                "janus.events_token (or janus.events_basic_auth) is required: without it anyone who reaches"
                " the HTTP port can post Janus events; set janus.events_open = true only if the intake is"
                " reachable from Janus alone"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file))
        return tuple(sources)


def load_settings(config: Path | None = None, **overrides: Any) -> ServiceSettings:
    """Settings from `config` (TOML), overridden by CALLVAULT_* environment variables and `overrides`."""
    if config is not None and not config.is_file():
        raise FileNotFoundError(f"config file {config} does not exist")

    class _FromFile(ServiceSettings):
        toml_file = config

    loaded = _FromFile(**overrides)
    return ServiceSettings.model_validate(loaded.model_dump())
