"""MkDocs hooks: the benchmark figures under bench/results/ are part of the site.

Pages link to them as the repository lays them out (``../bench/results/x.png`` from a page in
docs/), which GitHub shows; on the site the hook copies ``bench/results/*.png`` (and the console
screenshots) to ``bench/results/`` and rewrites those links to match, so both views work and
nothing is copied into docs/.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parent.parent
RESULTS = "bench/results"
LINK = re.compile(r"\]\((?P<up>(?:\.\./)+)bench/results/(?=[^)\s]*\.png\))")


def on_files(files: Files, config) -> Files:
    """Add every PNG under bench/results/ to the site at the same path."""
    for image in sorted((REPO / RESULTS).rglob("*.png")):
        path = image.relative_to(REPO).as_posix()
        files.append(
            File(path, src_dir=str(REPO), dest_dir=config["site_dir"], use_directory_urls=False)
        )
    return files


LIST_ITEM = re.compile(r"^(?:[*+-]|\d+\.) ")


def separated_lists(markdown: str) -> str:
    """A blank line before a top-level list that follows a paragraph line directly: GitHub
    starts the list there, Python-Markdown would run it into the paragraph."""
    out: list[str] = []
    fenced = False
    for line in markdown.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        previous = out[-1] if out else ""
        if (
            not fenced
            and LIST_ITEM.match(line)
            and previous.strip()
            and not previous[0].isspace()
            and not LIST_ITEM.match(previous)
            and not previous.startswith(("|", "#", "<", ">"))
        ):
            out.append("")
        out.append(line)
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Lists separated from the paragraph before them, and ``../bench/results/`` seen from
    docs/ made ``bench/results/`` inside the site."""
    markdown = separated_lists(markdown)
    depth = page.file.src_uri.count("/")

    def relink(match: re.Match) -> str:
        climbs_out_of_docs = len(match["up"]) // 3 == depth + 1
        return f"]({'../' * depth}{RESULTS}/" if climbs_out_of_docs else match[0]

    return LINK.sub(relink, markdown)
