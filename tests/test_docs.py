"""The README, docs/ and experiments/results/ pages: every relative link and image resolves, every
docs page is linked, and the README's quick start names a config that exists."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RESULT_PAGES = sorted((ROOT / "experiments" / "results").rglob("*.md"))  # READMEs and nas report pages
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _relative_links(page: pathlib.Path) -> list[str]:
    links = [m.group(1).split("#")[0] for m in LINK.finditer(page.read_text())]
    return [link for link in links if link and "://" not in link]


def test_every_relative_link_resolves():
    broken = [
        f"{page.relative_to(ROOT)} -> {link}"
        for page in PAGES + RESULT_PAGES
        for link in _relative_links(page)
        if not (page.parent / link).resolve().exists()
    ]
    assert not broken, broken


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / link).resolve() for link in _relative_links(ROOT / "README.md")}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not unlinked, unlinked


def test_quick_start_config_exists():
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("##", 1)[0]
    configs = re.findall(r"--config (\S+)", quick_start)
    assert configs and all((ROOT / c).is_file() for c in configs), configs
