"""The archive: stores recordings (spooled uploads while recording), signs their manifests and announces
them with webhooks. `Archive` is the RecordingSink the service hands every recording to."""

from recorder.archive.archive import Archive
from recorder.archive.naming import media_content_type
from recorder.archive.settings import ArchiveSettings
from recorder.archive.tickets import Failure, FinishTicket

__all__ = ["Archive", "ArchiveSettings", "Failure", "FinishTicket", "media_content_type"]
