"""Janus WebSocket/Admin API client and event intake (see the issue "Janus bridge").

Modules: ``errors`` (typed Janus errors), ``transport`` (reconnecting WebSocket with transactions),
``client`` (session, keepalive, plugin handles), ``videoroom`` (rooms, participants, RTP forwarders),
``admin`` (Admin API), ``events`` (typed event-handler events), ``intake`` (sampleevh/wsevh endpoints).
"""

from janus_bridge.admin import HandleInfo, JanusAdminClient
from janus_bridge.client import JanusClient, PluginHandle, PluginResponse
from janus_bridge.errors import (
    ForwarderNotCreatedError,
    JanusApiError,
    JanusConnectionError,
    JanusError,
    JanusProtocolError,
    JanusTimeoutError,
    PluginError,
    VideoRoomError,
)
from janus_bridge.events import JanusEvent, parse_events
from janus_bridge.intake import EventIntake, IntakeStats
from janus_bridge.transport import Backoff, ConnectionState
from janus_bridge.videoroom import (
    Forwarder,
    ForwardStream,
    Participant,
    PublisherForwarders,
    RoomInfo,
    VideoRoom,
)

__all__ = [
    "Backoff",
    "ConnectionState",
    "EventIntake",
    "ForwardStream",
    "Forwarder",
    "ForwarderNotCreatedError",
    "HandleInfo",
    "IntakeStats",
    "JanusAdminClient",
    "JanusApiError",
    "JanusClient",
    "JanusConnectionError",
    "JanusError",
    "JanusEvent",
    "JanusProtocolError",
    "JanusTimeoutError",
    "Participant",
    "PluginError",
    "PluginHandle",
    "PluginResponse",
    "PublisherForwarders",
    "RoomInfo",
    "VideoRoom",
    "VideoRoomError",
    "parse_events",
]
