"""Named crash points for the chaos suite, inert unless the platform runs with them enabled.

`await failpoint("checkout.reply_received.CHARGING")` does nothing unless the process runs
with `EMPORIUM_FAILPOINTS=1` and the point is *armed*: a file
`<data dir>/failpoints/<name>.armed` exists. The first process to reach an armed point
renames that file to `<data dir>/failpoints/<name>` (atomic: exactly one process wins),
writes its pid into it, and then waits forever, so the test that armed it knows the process
is exactly there and kills it with SIGKILL. "Killed between a reply and its commit" becomes a
repeatable experiment on the real process instead of a lucky timing, and the restarted
process runs on (the point is disarmed by firing). The idea is etcd's gofail or TiKV's
fail-rs; unarmed, the cost is one failed rename when enabled and nothing otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

ENV: Final = "EMPORIUM_FAILPOINTS"


def directory(data_dir: Path | None = None) -> Path:
    root = data_dir or Path(os.environ.get("EMPORIUM_DATA_DIR") or "var")
    return root / "failpoints"


def arm(name: str, data_dir: Path) -> Path:
    """Arm `name` for the next process that reaches it; returns where its pid will be."""
    folder = directory(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.armed").touch()
    return folder / name


async def failpoint(name: str) -> None:
    """Pause here forever if `name` is armed (see the module docstring)."""
    if os.environ.get(ENV, "") in ("", "0"):
        return
    folder = directory()
    fired = folder / name
    try:
        os.rename(folder / f"{name}.armed", fired)
    except OSError:
        return  # not armed (or another process won)
    fired.write_text(f"{os.getpid()}\n")
    log.warning("failpoint reached: waiting to be killed", extra={"failpoint": name})
    await asyncio.Event().wait()
