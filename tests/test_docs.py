"""Every relative link in README.md and docs/*.md resolves: the file exists and, for `page.md#part`,
the page has a heading whose GitHub anchor is `part`.

Pure Python and fast (no Markdown library, no network): links to other sites are not checked, and
links inside code blocks or code spans are text, not links.
"""

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target "title"); the text may hold one level of brackets ([`a`][b]).
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # http:, https:, mailto: ... point elsewhere


def doc_files(root: Path = REPO_ROOT) -> list[Path]:
    """The pages whose links are checked: README.md and every Markdown file under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    lines, in_fence = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            lines.append((number, line))
    return lines


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition in prose."""
    found = []
    for number, line in prose_lines(text):
        line = CODE_SPAN.sub("", line)  # `[x](y)` in code is text
        found += [(number, match.group(1)) for match in INLINE_LINK.finditer(line)]
        definition = REFERENCE_DEF.match(line)
        if definition:
            found.append((number, definition.group(1)))
    return found


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its text without markup, lower case, punctuation other
    than '-' and '_' dropped, spaces as '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a page; repeated headings get -1, -2 ... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in prose_lines(text):
        heading = HEADING.match(line)
        if not heading:
            continue
        anchor = github_anchor(heading.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        result.add(anchor if count == 0 else f"{anchor}-{count}")
    return result


def broken_links(page: Path) -> list[str]:
    """'page:line: target (why)' for every relative link of ``page`` that does not resolve."""
    problems = []
    for number, target in links(page.read_text(encoding="utf-8")):
        if SCHEME.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.name}:{number}: {target}"
        if not destination.exists():
            problems.append(f"{where} (no such file: {destination})")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(
                destination.read_text(encoding="utf-8")):
            problems.append(f"{where} (no heading with anchor #{anchor} in {destination.name})")
    return problems


@pytest.mark.parametrize("page", doc_files(), ids=lambda page: page.relative_to(REPO_ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    assert page.is_file(), f"{page} is missing"
    assert broken_links(page) == []


def test_docs_pages_are_found() -> None:
    pages = {page.relative_to(REPO_ROOT).as_posix() for page in doc_files()}
    assert {"README.md", "docs/training.md", "docs/serving.md"} <= pages


def test_broken_links_reports_a_missing_file(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("See [the guide](guide.md) and [home](https://example.org/x.md).\n")
    assert broken_links(page) == [f"page.md:1: guide.md (no such file: {tmp_path / 'guide.md'})"]


def test_broken_links_reports_a_missing_anchor_and_accepts_a_present_one(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text("# Guide\n\n## The `make bench` run, 2 cores\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](guide.md#the-make-bench-run-2-cores) [bad](guide.md#measured)\n"
                    "![picture](img/a.png)\n")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"")
    assert broken_links(page) == ["page.md:1: guide.md#measured (no heading with anchor #measured "
                                  "in guide.md)"]


def test_broken_links_checks_anchors_within_the_same_page(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n## Top\n\n[a](#top-1) [b](#top-2)\n")
    assert broken_links(page) == ["page.md:5: #top-2 (no heading with anchor #top-2 in page.md)"]


def test_links_in_code_are_not_links(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```\n[x](missing.md)\n```\nInline `[y](missing.md)` too.\n"
                    "[ref]: also-missing.md\n")
    assert broken_links(page) == [
        f"page.md:5: also-missing.md (no such file: {tmp_path / 'also-missing.md'})"]
