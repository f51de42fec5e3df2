"""The README and the notes under docs/ link to files and sections that exist (the notes were split
out of the README, and a moved section must not leave a dead link behind)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings: lower case, punctuation dropped, spaces as
    hyphens."""
    anchors = set()
    for line in path.read_text().splitlines():
        if match := re.match(r"#+ (.*)", line):
            words = re.sub(r"[^\w\- ]", "", match.group(1).lower())
            anchors.add(words.replace(" ", "-"))
    return anchors


def local_links(path: Path) -> list[str]:
    return [target for target in LINK.findall(path.read_text()) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_local_link_reaches_a_file_and_a_heading(document):
    links = local_links(document)
    for target in links:
        file_part, _, anchor = target.partition("#")
        linked = (document.parent / file_part).resolve() if file_part else document
        assert linked.exists(), f"{document.name} links to {target}: no such file"
        if anchor:
            assert anchor in heading_anchors(linked), f"{document.name} links to {target}: no such heading"


def test_the_readme_points_to_both_notes():
    links = local_links(ROOT / "README.md")
    assert {"docs/gan-recipe.md", "docs/speed.md"} <= set(links)


def test_heading_anchors_follow_githubs_rule(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n### Speed (`imgjax bench`)\n\n## More devices: data parallelism, multi-host\n")
    assert heading_anchors(page) == {"title", "speed-imgjax-bench", "more-devices-data-parallelism-multi-host"}


def test_every_picture_the_readme_shows_names_the_command_that_remakes_it():
    """The studio's pictures come from `imgjax pictures` (which writes exactly those), the results'
    from `imgjax eval <family> --write-card`; the command is written under each picture."""
    from imgjax.pictures import PICTURES
    lines = (ROOT / "README.md").read_text().splitlines()
    shown = []
    for number, line in enumerate(lines):
        for picture in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", line):
            shown.append(picture)
            under = "\n".join(lines[number:number + 2])
            studio = picture.startswith("docs/")
            assert ("`imgjax pictures`" in under) if studio else re.search(r"`imgjax eval \w+ (--checkpoint \S+ )?--write-card`", under), \
                f"README: no command under {picture}"
    assert {Path(p).name for p in shown if p.startswith("docs/")} == set(PICTURES)
