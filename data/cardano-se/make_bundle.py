"""Rebuild this bundle from the Cardano Stack Exchange dump.

This script is Agora code (Apache-2.0); the files it writes are Stack Exchange content under
CC BY-SA 4.0 (see NOTICE and LICENSE in this folder).

Source: the complete cardano.stackexchange.com data dump (2021-04-27 .. 2021-12-05) as staged in
``../shared/data/community-cardano-se`` (see its PROVENANCE.md: the official dump XML, taken from
github.com/Igodlab/stackexchangeparser, branch cse-personal, commit
3f2e83d8c233f284be18827c59a72816beab96fe, path data/*.xml; PostHistory.xml is not included).

What it does:

1. checks every source file against the sha256 listed in PROVENANCE.md;
2. rewrites Users.xml keeping only Id, Reputation, CreationDate, LastAccessDate, Views, UpVotes,
   DownVotes and AccountId (DisplayName, AboutMe, Location, WebsiteUrl and ProfileImageUrl are
   dropped), rows and their order unchanged;
3. writes every table gzip-compressed (level 9, no file name or time stamp in the header, so
   the output is byte-for-byte reproducible): Posts, Users, Comments, Votes, Badges, Tags and
   PostLinks as ``<Table>.xml.gz``. All tables other than Users are compressed unchanged.

Run from the repository root::

    python data/cardano-se/make_bundle.py [SOURCE_FOLDER]
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import quoteattr

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[1] / ".." / "shared" / "data" / "community-cardano-se"

#: sha256 of the raw source files, from community-cardano-se/PROVENANCE.md.
SOURCE_SHA256 = {
    "Badges.xml": "66ca37d3c533b5923b1c0b81d5a625a50ab88806b028bd9c3b28b40bb4be4d5a",
    "Comments.xml": "5f75635624c00413eeb802bb6e5ebe73d11bf19a7a1afac0155609868e0414e1",
    "PostLinks.xml": "bbee40a063c69a4775258b1878e382442eff1eabfca2337abac7fc6dda5f0fa9",
    "Posts.xml": "b5b5477557d2b60a4aaa5e01b90d0764306b144da1399a6756341d6cd3f6d713",
    "Tags.xml": "44a8739e40c0d299051f10f35e1db3ce7f92371aaf15fb0d682470d46ffbb82b",
    "Users.xml": "539ad36483570421b34efb2b9f228207fb818df7fc5375b3e99ea817e074ca4e",
    "Votes.xml": "a7aabb3748899438c01dc410091111ec3d238e1c49b82c921d6cd2ee67f91ef8",
}
USER_FIELDS_KEPT = (
    "Id",
    "Reputation",
    "CreationDate",
    "LastAccessDate",
    "Views",
    "UpVotes",
    "DownVotes",
    "AccountId",
)


def users_without_profile_text(raw: bytes) -> bytes:
    """Users.xml with only the kept attributes on every row (same rows, same order)."""
    root = ET.fromstring(raw)
    lines = ['\ufeff<?xml version="1.0" encoding="utf-8"?>', "<users>"]
    for row in root.iter("row"):
        attrs = " ".join(
            f"{name}={quoteattr(row.attrib[name])}"
            for name in USER_FIELDS_KEPT
            if name in row.attrib
        )
        lines.append(f"  <row {attrs} />")
    lines.append("</users>")
    return "\r\n".join(lines).encode("utf-8")  # CRLF, no final newline, as in the dump


def write_gzip(path: Path, data: bytes) -> None:
    """gzip level 9 without a file name or modification time in the header (reproducible)."""
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(data)


def main(source: Path) -> None:
    source = source.resolve()
    for name, expected in SOURCE_SHA256.items():
        data = (source / name).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise SystemExit(f"{source / name}: sha256 {digest} is not the one in PROVENANCE.md")
        if name == "Users.xml":
            data = users_without_profile_text(data)
        out = HERE / f"{name}.gz"
        write_gzip(out, data)
        print(f"{out.relative_to(HERE)}: {len(data):,} bytes -> {out.stat().st_size:,} gzipped")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE)
