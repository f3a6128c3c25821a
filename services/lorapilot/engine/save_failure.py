"""A save that failed (a full disk, a file-size limit, a lost volume): what was being saved, why,
and which earlier save still stands, in one message the user can act on.

Each save writes to a temporary name and renames it into place, and removes the temporary on
failure, so the previous save is untouched; the run then stops with this error instead of going
on without a resumable state.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

from lorapilot.errors import LoraPilotError


class SaveFailedError(LoraPilotError):
    """Writing a save failed; `previous` names the save a retry resumes from (None: none yet)."""

    def __init__(self, what: str, reason: str, previous: str | None) -> None:
        self.what, self.reason, self.previous = what, reason, previous
        kept = (
            f"the previous save ({previous}) is intact"
            if previous
            else "there is no earlier save, so a retry starts from the beginning"
        )
        super().__init__(f"saving {what} failed: {reason}; the partial save was removed and {kept}")


def reason_of(exc: BaseException) -> str:
    """The operating system's reason when there is one in the chain (torch and safetensors wrap it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            name = errno.errorcode.get(seen.errno, str(seen.errno))
            return f"{seen.strerror or name} ({name})"
        seen = seen.__cause__ or seen.__context__
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def saving(what: str, previous: str | None) -> Iterator[None]:
    """Turn any failure of the save in the block into a `SaveFailedError`."""
    try:
        yield
    except SaveFailedError:
        raise
    except Exception as exc:
        raise SaveFailedError(what, reason_of(exc), previous) from exc
