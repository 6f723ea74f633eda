"""``agora import --format gorse FOLDER`` and ``agora export --format gorse FOLDER``: Gorse's
data files (:mod:`agora.gorse.files`: users.csv, items.csv, feedback.csv) into and out of the
store, so a platform moves its Gorse data over in one step and can take it back."""

from __future__ import annotations

from pathlib import Path

from agora.cli.shell import console, fail, store_sessions
from agora.config import get_settings
from agora.gorse import files


def import_gorse(folder: Path) -> None:
    """Write a folder of Gorse files; a file with any bad line is refused whole."""
    settings = get_settings()
    if not folder.is_dir():
        raise fail(
            f"{folder}: a Gorse import is a folder holding {files.USERS}, {files.ITEMS} "
            f"and/or {files.FEEDBACK}"
        )
    try:
        counts = files.import_folder(store_sessions(settings), folder, settings)
    except files.FilesRejected as exc:
        raise fail(f"{folder}: {exc}; nothing was written") from exc
    read = ", ".join(f"{n:,} {kind}" for kind, n in counts.items())
    console.print(f"imported {folder} (Gorse files): {read}")


def export_gorse(folder: Path) -> None:
    """Write the store as Gorse's three files into ``folder``."""
    with store_sessions(get_settings())() as session:
        written = files.export_folder(session, folder)
    rows = ", ".join(f"{name} {n:,} rows" for name, n in written.items())
    console.print(f"exported to {folder} (Gorse files): {rows}")
