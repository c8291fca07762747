"""The documentation names only files that exist, and the README stays a short path.

Every file README.org, docs/*.org and benchmarks/RESULTS.md name must be in the repository:
the targets of org links (``[[file:...]]``, ``[[./...]]``, relative to the page), and every
mention of a repository path, in markup or in a command: a path under one of the repository's
folders (src/, exps/, scripts/, benchmarks/, tests/, docs/, assets/), a config of exps/json/, or
a script named by its bare name (``train.py``, ``main.sh``, ``test_resume.py``). Paths with
placeholders (``<id>``, ``$SAVEDIR``, ``*``) are not files and are left alone. Every module of the
repository a command runs with ``python -m`` (``benchmarks.quality``, ``src.synthetic``) must be
there too. No torch here.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.org", ROOT / "benchmarks" / "RESULTS.md", *sorted((ROOT / "docs").glob("*.org"))]
README_MAX_LINES = 410
REPO_FOLDERS = ("src/", "exps/", "scripts/", "benchmarks/", "tests/", "docs/", "assets/", "json/")
# Where a script named without its folder may live.
SCRIPT_FOLDERS = ("", "exps/", "scripts/", "benchmarks/", "tests/", "src/", "src/synthetic/")
LINK = re.compile(r"\[\[(?:file:)?([^\]\[]+?)\](?:\[[^\]]*\])?\]")
# Characters around or between the paths of prose, markup and commands.
SEPARATORS = re.compile(r"[\s=`'\"()\[\]{},;|]+")
PLACEHOLDER = re.compile(r"[<>$*~^%]")
SCRIPT = re.compile(r"^[\w.-]+\.(py|sh)$")
MODULE_RUN = re.compile(r"\s-m\s+([A-Za-z_][\w.<>$*]*)")
# Files the user makes by following the README (cp env.sh.bak env.sh), not in the repository.
MADE_BY_THE_USER = {"exps/env.sh", "env.sh"}


def link_targets(text: str) -> list[str]:
    """Targets of org links to local files (not URLs)."""
    return [target for target in LINK.findall(text) if not re.match(r"^[a-z]+://", target)]


def path_mentions(text: str) -> set[str]:
    """Repository paths mentioned anywhere in ``text``: tokens under a repository folder, or
    bare script names."""
    mentions = set()
    for token in SEPARATORS.split(LINK.sub(" ", text)):
        token = token.split("::")[0].removeprefix("file:").rstrip(".:")
        if not token or PLACEHOLDER.search(token) or "://" in token:
            continue
        if token.startswith("./"):
            token = token[2:]
        if token.startswith(REPO_FOLDERS) or SCRIPT.match(token):
            mentions.add(token)
    return mentions


def module_mentions(text: str) -> set[str]:
    """Modules of the repository that ``python -m`` runs in ``text``: those whose top package is
    one of its folders (not ``venv``, ``pytest``), placeholders (``benchmarks.<name>``) left alone."""
    return {module.rstrip(".") for module in MODULE_RUN.findall(text)
            if not PLACEHOLDER.search(module) and (ROOT / module.split(".")[0]).is_dir()}


def module_exists(module: str) -> bool:
    path = ROOT / module.rstrip(".").replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()


def exists(mention: str) -> bool:
    if mention in MADE_BY_THE_USER:
        return True
    if mention.startswith("json/"):  # the configs, named from exps/ as the launchers take them
        return (ROOT / "exps" / mention).exists()
    folders = SCRIPT_FOLDERS if SCRIPT.match(mention) else ("",)
    return any((ROOT / folder / mention).exists() for folder in folders)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_file_a_page_links_exists(page):
    missing = [target for target in link_targets(page.read_text())
               if not (page.parent / target.split("::")[0]).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_repository_path_a_page_mentions_exists(page):
    missing = sorted(mention for mention in path_mentions(page.read_text()) if not exists(mention))
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_module_a_page_runs_exists(page):
    missing = sorted(module for module in module_mentions(page.read_text()) if not module_exists(module))
    assert not missing, f"{page.relative_to(ROOT)} runs modules that do not exist: {missing}"


def test_the_checks_find_what_they_are_for():
    """The two checks catch a missing script, config or picture, and skip placeholders and data."""
    text = ("run =tests/test_grf.py= and `benchmarks/quality.py --exp_name <run>`, "
            "bash main.sh sbgm x json/nope.json; [[file:src/nope.py][nope]] [[./assets/none.png]] "
            "=$SAVEDIR/<name>/model.pt= data/synthetic_volcano =results.json= =tests/test_docs.py::test_x=")
    assert path_mentions(text) == {"tests/test_grf.py", "benchmarks/quality.py", "main.sh", "json/nope.json",
                                   "tests/test_docs.py"}
    assert [m for m in sorted(path_mentions(text)) if not exists(m)] == ["json/nope.json", "tests/test_grf.py"]
    assert link_targets(text + " [[https://arxiv.org/abs/1][paper]]") == ["src/nope.py", "./assets/none.png"]
    commands = ("=python -m benchmarks.quality --Ntest 8=, python -m src.synthetic, python -m benchmarks.nope. "
                "python -m venv, python -m benchmarks.<name>")
    assert module_mentions(commands) == {"benchmarks.quality", "src.synthetic", "benchmarks.nope"}
    assert [m for m in sorted(module_mentions(commands)) if not module_exists(m)] == ["benchmarks.nope"]


def test_readme_is_a_short_path():
    lines = (ROOT / "README.org").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.org has {lines} lines; findings and tables belong in docs/ or benchmarks/"
