"""The documentation site (mkdocs.yml, docs/) builds with `mkdocs build --strict`, so a broken link or
anchor, or a page left out of the nav, fails the tests; the README links to the pages as GitHub shows them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )


def nav_pages() -> list[str]:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    return [next(iter(item.values())) for item in config["nav"]]


def copy_of_the_site(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", root / "mkdocs.yml")
    shutil.copytree(DOCS, root / "docs")
    return root


def test_site_builds_strict(tmp_path: Path) -> None:
    result = build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    for page in nav_pages():
        assert (tmp_path / "site" / page.removesuffix(".md").replace("index", "") / "index.html").is_file()


def test_every_page_is_in_the_nav() -> None:
    assert sorted(nav_pages()) == sorted(p.name for p in DOCS.glob("*.md"))
    assert "security.md" in nav_pages()


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda docs: (docs / "extra.md").write_text("# Extra\n"), "extra.md"),
        (lambda docs: (docs / "api.md").write_text("# API\n\n[gone](missing.md)\n"), "missing.md"),
        (
            lambda docs: (docs / "api.md").write_text("# API\n\n[gone](commands.md#no-such-part)\n"),
            "no-such-part",
        ),
    ],
    ids=["page-not-in-nav", "broken-link", "broken-anchor"],
)
def test_strict_build_fails_on(tmp_path: Path, change: Callable[[Path], object], complaint: str) -> None:
    root = copy_of_the_site(tmp_path)
    change(root / "docs")
    result = build(root, tmp_path / "site")
    assert result.returncode != 0
    assert complaint in result.stdout + result.stderr


def github_anchors(markdown: str) -> set[str]:
    """Heading anchors as GitHub (and mkdocs' toc) make them: lower case, punctuation dropped, spaces to -."""
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6} (.+)", line)):
            text = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def readme_links() -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", README.read_text())


def test_readme_links_to_the_docs_as_relative_paths() -> None:
    links = [link for link in readme_links() if "docs/" in link or link.endswith(".md")]
    assert links
    for link in links:
        assert not link.startswith(("/", "http:", "https:")), link
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), link
        if anchor:
            assert anchor in github_anchors(target.read_text()), link
    linked = {link.partition("#")[0] for link in links}
    missing = [page for page in nav_pages() if page != "index.md" and f"docs/{page}" not in linked]
    assert not missing, f"pages the README does not link to: {missing}"


def test_readme_gives_the_two_commands() -> None:
    text = README.read_text()
    assert "## The two commands" in text
    for command in ("make demo", "make test"):
        assert command in text


STALE = (
    "not yet wired",
    "(to come)",
    "being wired in",
    "being added",
    "wiring in progress",
    "until then it ignores",
)


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_no_stale_promises(page: Path) -> None:
    text = page.read_text().lower()
    assert not [s for s in STALE if s in text]
