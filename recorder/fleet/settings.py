"""`fleet.*`: a recorder node's name in the fleet, its heartbeat, when a silent recorder counts as dead."""

from __future__ import annotations

import re
import socket

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}")
"""A node name: a host name's characters, 1-63 of them (it becomes part of recording ids)."""


class FleetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_name: str = Field(
        default="",
        description="This recorder's name in the fleet (1-63 letters, digits, '.' or '-'; unique: a second"
        " recorder with the same name refuses to start). Empty: the host name (a StatefulSet pod's name).",
    )
    sfu: str = Field(
        default="",
        max_length=200,
        description="The SFU this recorder follows, as GET /v1/recorders shows it. Empty: janus.ws_url"
        " (or 'ingest' when Janus is off).",
    )
    heartbeat_seconds: float = Field(
        default=5.0, gt=0, le=300, description="How often a recorder tells the catalog it is alive."
    )
    dead_after_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A recorder silent this long is dead to the others: its recordings still in progress"
        " are marked failed with what was recovered, unless it comes back first. At least two heartbeats.",
    )

    command_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="An API node without an SFU of its own: how long a room command (pause, resume, start,"
        " stop) waits for the recorder concerned to take it, and again for its result; then 504.",
    )
    command_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="A recorder looks for room commands this often besides being woken by PostgreSQL's"
        " NOTIFY (a lost notification only delays a command this long).",
    )

    @field_validator("node_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and NODE_NAME.fullmatch(value) is None:
            raise ValueError("must be 1-63 letters, digits, '.' or '-', starting with a letter or digit")
        return value

    @model_validator(mode="after")
    def _two_heartbeats(self) -> FleetSettings:
        if self.dead_after_seconds < 2 * self.heartbeat_seconds:
            raise ValueError("fleet.dead_after_seconds must be at least twice fleet.heartbeat_seconds")
        return self

    def node(self) -> str:
        """The node name: the setting, else this host's name (cut to its first 63 valid characters)."""
        if self.node_name:
            return self.node_name
        host = "".join(c for c in socket.gethostname() if c.isalnum() or c in ".-").lstrip(".-")[:63]
        return host or "recorder"
