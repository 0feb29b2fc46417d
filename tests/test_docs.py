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


NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+")  # figures: 28,139 / 81.61 / 0.05


def _figures(text: str) -> list[str]:
    return NUMBER.findall(text)


def _rounds_to(figure: str, figures: list[float]) -> bool:
    """``figure`` is one of ``figures``, or one of them rounds to it (58.18 -> 58.2)."""
    decimals = len(figure.split(".")[1]) if "." in figure else 0
    value = float(figure.replace(",", ""))
    return any(round(f, decimals) == value for f in figures)


def test_the_results_index_headlines_are_the_folders_own_figures():
    """Each row's headline in experiments/results/README.md is copied by hand from the pages the row
    links to (the folder's README, its report, a docs page): every figure in it must stand there."""
    index = ROOT / "experiments" / "results" / "README.md"
    stray = []
    rows = [line for line in index.read_text().splitlines() if line.startswith("| [")]
    assert len(rows) >= 10, "the index's table rows were not found"
    for row in rows:
        headline = row.strip().strip("|").split("|")[-1]
        pages = []
        for link in LINK.findall(row):
            target = (index.parent / link.split("#")[0]).resolve()
            target = target / "README.md" if target.is_dir() else target
            if target.is_file():
                pages.append(target.read_text())
        figures = [float(f.replace(",", "")) for page in pages for f in _figures(page)]
        stray += [f"{row.split(']')[0][3:]}: {figure}" for figure in _figures(headline)
                  if not _rounds_to(figure, figures)]
    assert not stray, stray


def test_ci_runs_both_tiers_of_the_readmes_tests():
    """.ci/run runs the README's test command and the slow tier the README names."""
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci" / "run").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    command = quick_start.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()[-1]
    assert command == "python -m pytest" and "`python -m pytest -m slow`" in quick_start
    ci_commands = [line.strip() for line in ci.splitlines() if line.strip().startswith("python3 -m pytest")]
    assert ci_commands == ["python3 -m pytest", "python3 -m pytest -m slow"]
