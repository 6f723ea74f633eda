"""The docs site builds in strict mode (a broken link or a missing page fails), its generated
references are those the code renders now, and the README stays a front door."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def nav_pages(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in nav_pages(value)]
    return []


def test_mkdocs_builds_the_site_in_strict_mode(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for page in ("index.html", "ARCHITECTURE/index.html", "reference/rest/index.html"):
        assert (site / page).is_file(), page
    rest = (site / "reference/rest/index.html").read_text()
    assert "/users/{user_id}/feed" in rest and "Scope: <strong>read</strong>" in rest


def test_every_nav_page_exists() -> None:
    config = yaml.load((REPO / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    missing = [p for p in nav_pages(config["nav"]) if not (REPO / "docs" / p).is_file()]
    assert not missing, f"nav names missing pages: {missing}"


def test_the_generated_pages_are_what_the_code_renders_now(gen_reference) -> None:
    """The REST and CLI references and docs/scopes.md."""
    for path, text in gen_reference.current().items():
        assert path.read_text() == text, f"{path.name} is stale: run `python docs/gen_reference.py`"
        # a clean clone elsewhere renders the same reference: no path of this checkout in it
        assert str(REPO.parent) not in text, f"{path.name} names a path of this machine"


def test_a_stale_generated_page_fails_the_check_and_writing_mends_it(
    gen_reference, tmp_path: Path, monkeypatch, capsys
) -> None:
    for name in ("REFERENCE", "SCOPES"):  # the pages go to tmp_path, not to this checkout
        monkeypatch.setattr(gen_reference, name, tmp_path / name.lower())
    scopes = tmp_path / "scopes"
    assert gen_reference.main([]) == 0
    text = scopes.read_text()
    assert "| DELETE | `/users/{user_id}` | admin |" in text
    assert "| GET | `/health` | none |" in text
    assert gen_reference.main(["--check"]) == 0

    scopes.write_text(text.replace("| DELETE | `/users/{user_id}` | admin |", "| DELETE | x |"))
    capsys.readouterr()
    assert gen_reference.main(["--check"]) == 1
    printed = capsys.readouterr().out
    assert printed.count("stale: ") == 1 and printed.rstrip().endswith(
        "scopes (run `python docs/gen_reference.py`)"
    ), printed
    assert gen_reference.main([]) == 0 and scopes.read_text() == text


def test_the_readme_is_a_front_door_of_at_most_200_lines() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= 200
