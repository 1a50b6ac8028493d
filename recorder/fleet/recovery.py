"""Which recordings' crashed tracks a recorder finalizes when it starts.

Alone (a SQLite catalog): every folder under `<data_dir>/recordings`, as always. In a fleet (a PostgreSQL
catalog) the recorders may share `recordings/` (the ReadWriteMany volume the workers read): a recorder then
finalizes only its own recordings, never the tracks a live peer is writing — the folders whose id carries
its node name (`<time>-<room>_<node>-<8 hex>`: node names have no '_', so the text after the id's last
'_' is the node) and those its own state.json names (recordings it had open, whatever their id).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from pydantic import ValidationError

from recorder.models import TrackSummary
from recorder.mux.recovery import recover_folder
from recorder.service.manager import ServiceState
from recorder.service.settings import ServiceSettings

log = logging.getLogger(__name__)


def in_fleet(settings: ServiceSettings) -> bool:
    return settings.api.catalog_location(settings.data_dir).dialect == "postgresql"


def owns(recording_id: str, node: str) -> bool:
    """Whether the recording id was made by recorder `node` (recorder/service/manager.py's fleet ids)."""
    return re.fullmatch(rf"\d{{8}}T\d{{6}}Z-.*_{re.escape(node)}-[0-9a-f]{{8}}", recording_id) is not None


def own_recordings(settings: ServiceSettings, recordings: Path) -> list[Path]:
    node = settings.fleet.node()
    named: set[str] = set()
    try:
        state = ServiceState.model_validate_json((settings.data_dir / "state.json").read_bytes())
        named = {room.recording_id for room in state.rooms.values()}
    except FileNotFoundError:
        pass
    except (OSError, ValidationError) as exc:
        log.error("fleet: unreadable state file, recovering only recordings named %s: %s", node, exc)
    folders = []
    for folder in sorted(recordings.iterdir()) if recordings.is_dir() else []:
        if folder.is_dir() and (folder.name in named or owns(folder.name, node)):
            folders.append(folder)
    return folders


def recover_own(settings: ServiceSettings, recordings: Path) -> list[TrackSummary]:
    """Finalize the tracks a crash left: all of them alone, only this recorder's in a fleet."""
    if not in_fleet(settings):
        return recover_folder(recordings)
    recovered: list[TrackSummary] = []
    for folder in own_recordings(settings, recordings):
        recovered += recover_folder(folder)
    return recovered
