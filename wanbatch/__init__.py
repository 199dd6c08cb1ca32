"""wanbatch: resumable, cost-safe batch generation for Alibaba's Wan 2.6 image model (DashScope).

The front door: everything public is importable from here; module names behind it are private.
Names are loaded lazily (PEP 562 ``__getattr__``) so that importing one pure module, or loading
the ``wanbatch.testing`` pytest plugin, does not drag in aiohttp, anyio and tqdm.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wanbatch._version import __version__ as __version__

if TYPE_CHECKING:
    from wanbatch._config import BatchConfig as BatchConfig
    from wanbatch._config import GenerationDefaults as GenerationDefaults
    from wanbatch._config import Secret as Secret
    from wanbatch._engine import BatchRun as BatchRun
    from wanbatch._engine import run_batch as run_batch
    from wanbatch._errors import ApiError as ApiError
    from wanbatch._errors import BatchFatal as BatchFatal
    from wanbatch._errors import ConnectFailed as ConnectFailed
    from wanbatch._errors import DownloadError as DownloadError
    from wanbatch._errors import FolderInUse as FolderInUse
    from wanbatch._errors import IntegrityError as IntegrityError
    from wanbatch._errors import InvalidJobs as InvalidJobs
    from wanbatch._errors import JobFileError as JobFileError
    from wanbatch._errors import JobRejected as JobRejected
    from wanbatch._errors import JournalError as JournalError
    from wanbatch._errors import OutputError as OutputError
    from wanbatch._errors import ResponseLost as ResponseLost
    from wanbatch._errors import RetryableApiError as RetryableApiError
    from wanbatch._errors import Throttled as Throttled
    from wanbatch._errors import TransportError as TransportError
    from wanbatch._errors import UrlExpired as UrlExpired
    from wanbatch._errors import WanbatchError as WanbatchError
    from wanbatch._events import CallFailed as CallFailed
    from wanbatch._events import CallStarted as CallStarted
    from wanbatch._events import Event as Event
    from wanbatch._events import Generated as Generated
    from wanbatch._events import ImageSaved as ImageSaved
    from wanbatch._events import JobDone as JobDone
    from wanbatch._events import JobFailed as JobFailed
    from wanbatch._events import KeyRetired as KeyRetired
    from wanbatch._events import RunAborted as RunAborted
    from wanbatch._events import RunPlanned as RunPlanned
    from wanbatch._events import RunStopping as RunStopping
    from wanbatch._events import ThrottledEvent as ThrottledEvent
    from wanbatch._events import UrlExpiredEvent as UrlExpiredEvent
    from wanbatch._events import ValidationNotes as ValidationNotes
    from wanbatch._jobinput import JobInput as JobInput
    from wanbatch._jobs import Job as Job
    from wanbatch._jobs import PlannedJob as PlannedJob
    from wanbatch._shards import Shard as Shard
    from wanbatch._summary import ExitCode as ExitCode
    from wanbatch._summary import RunSummary as RunSummary

#: The public names and the private module each comes from: the one list (the imports above
#: repeat it for type checkers; tests/unit/test_front_door.py checks that they agree).
_PUBLIC: dict[str, str] = {
    "BatchConfig": "wanbatch._config",
    "GenerationDefaults": "wanbatch._config",
    "Secret": "wanbatch._config",
    "Shard": "wanbatch._shards",
    "BatchRun": "wanbatch._engine",
    "run_batch": "wanbatch._engine",
    "ApiError": "wanbatch._errors",
    "BatchFatal": "wanbatch._errors",
    "ConnectFailed": "wanbatch._errors",
    "DownloadError": "wanbatch._errors",
    "FolderInUse": "wanbatch._errors",
    "IntegrityError": "wanbatch._errors",
    "InvalidJobs": "wanbatch._errors",
    "JobFileError": "wanbatch._errors",
    "JobRejected": "wanbatch._errors",
    "JournalError": "wanbatch._errors",
    "OutputError": "wanbatch._errors",
    "ResponseLost": "wanbatch._errors",
    "RetryableApiError": "wanbatch._errors",
    "Throttled": "wanbatch._errors",
    "TransportError": "wanbatch._errors",
    "UrlExpired": "wanbatch._errors",
    "WanbatchError": "wanbatch._errors",
    "CallFailed": "wanbatch._events",
    "CallStarted": "wanbatch._events",
    "Event": "wanbatch._events",
    "Generated": "wanbatch._events",
    "ImageSaved": "wanbatch._events",
    "JobDone": "wanbatch._events",
    "JobFailed": "wanbatch._events",
    "KeyRetired": "wanbatch._events",
    "RunAborted": "wanbatch._events",
    "RunPlanned": "wanbatch._events",
    "RunStopping": "wanbatch._events",
    "ThrottledEvent": "wanbatch._events",
    "UrlExpiredEvent": "wanbatch._events",
    "ValidationNotes": "wanbatch._events",
    "JobInput": "wanbatch._jobinput",
    "Job": "wanbatch._jobs",
    "PlannedJob": "wanbatch._jobs",
    "ExitCode": "wanbatch._summary",
    "RunSummary": "wanbatch._summary",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'wanbatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    if getattr(value, "__module__", "").startswith("wanbatch._"):
        try:
            value.__module__ = "wanbatch"
        except (AttributeError, TypeError):
            pass
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
