"""The offline planner's parse_prd: a PRD's structure turned into ordered tasks, without a model.

1. Outline: headings (ATX `#` and setext), numbered items (`1.`, `1)`, `(1)`, `1.2`, `１．`, `一、`,
   `FR-3:`) and bullets, with nesting by indent; code blocks are skipped.
2. Requirements: each top-level list item (its nested items become its points); a section with
   text but no list becomes one requirement named by its heading. Items under context sections
   (overview, background, glossary, ...) are left out unless nothing else is found. With no
   structure at all, paragraphs are the requirements, and a single paragraph is cut into sentences.
3. Dependencies point only backwards: an explicit mention ("after 3", "depends on the login
   API") links to the earlier requirement it names (by its written number, or by the most alike
   earlier title); a requirement with no mention follows the one before it in its section.
4. numTasks > 0 caps the count: consecutive requirements are merged into that many tasks of
   near-equal size. Fewer requirements than numTasks gives fewer tasks (nothing is invented).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .heuristics import (
    balanced_chunks,
    best_match,
    clean,
    description_of,
    mentions,
    priority_of,
    sentences,
    title_of,
    words,
)

_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-{2,})\s*$")
_NUMBERED = re.compile(
    r"^(\s*)(?:\(?(\d{1,3})[.)．）](?!\d)|（(\d{1,3})）|(\d{1,3})、|[一二三四五六七八九十]+、|"
    r"(\d{1,3})((?:\.\d{1,3})+)\.?|(?:FR|NFR|REQ|US)[-_ ]?(\d{1,4})\s*[:.)])(?:\s+|(?<=[、）:]))(.+)$", re.I)
_BULLET = re.compile(r"^(\s*)[-*+•●▪◦–—]\s+(.+)$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_RULE = re.compile(r"^\s*([-*_=])(\s*\1)+\s*$")
_CONTEXT_SECTIONS = re.compile(
    r"^(?:\d+[.)]?\s*)?(overview|introduction|intro|background|summary|executive summary|context|glossary|"
    r"appendix|references|table of contents|contents|toc|non[- ]goals|out of scope|terminology|"
    r"definitions|about|purpose|vision|problem statement|risks?(?: and mitigations)?|open questions)"
    r"\s*[:.]?\s*$", re.I)


@dataclass
class Requirement:
    text: str
    section: str = ""
    section_index: int = 0
    number: int | None = None
    points: list[str] = field(default_factory=list)


def plan_tasks(prd: str, num_tasks: int, next_id: int, default_priority: str = "medium") -> list[dict]:
    """Task dicts in the parse_prd result shape, ids from next_id, dependencies on earlier ids only."""
    reqs = requirements(prd)
    if not reqs:
        return []
    titles = [title_of(r.text) for r in reqs]
    deps = _dependencies(reqs, titles)
    groups = balanced_chunks(len(reqs), num_tasks) if 0 < num_tasks < len(reqs) else \
        [range(i, i + 1) for i in range(len(reqs))]
    group_of = {r: g for g, members in enumerate(groups) for r in members}
    tasks = []
    for g, members in enumerate(groups):
        parts = [reqs[r] for r in members]
        depends = sorted({group_of[d] for r in members for d in deps[r]} - {g})
        tasks.append(_task(parts, [titles[r] for r in members], next_id + g,
                           [next_id + d for d in depends if d < g], default_priority))
    return tasks


def requirements(prd: str) -> list[Requirement]:
    sections, loose = _outline(prd)
    found = _from_sections(sections, skip_context=True) or _from_sections(sections, skip_context=False)
    if found:
        return found
    paragraphs = [p for p in loose if p]
    if len(paragraphs) > 1 and _looks_like_title(paragraphs[0]):
        paragraphs = paragraphs[1:]  # a document title, not a requirement
    if len(paragraphs) == 1:
        paragraphs = sentences(paragraphs[0])
    if paragraphs:
        return [Requirement(text=p) for p in paragraphs]
    return [Requirement(text=s.title, section=s.title, section_index=s.index) for s in sections if s.title]


def _looks_like_title(paragraph: str) -> bool:
    return len(paragraph.split()) <= 6 and not paragraph.rstrip().endswith((".", "!", "?", "。", "！", "？"))


# ---- outline --------------------------------------------------------------------------------------
@dataclass
class _Section:
    title: str
    index: int
    text: list[str] = field(default_factory=list)
    items: list[Requirement] = field(default_factory=list)


def _outline(prd: str) -> tuple[list[_Section], list[str]]:
    """Sections with their top-level items and text, and the document's paragraphs (for no-structure)."""
    lines = prd.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    sections = [_Section("", 0)]
    paragraphs: list[str] = [""]
    item_indent: int | None = None  # indent of the current list's top level
    in_code = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        heading = _heading(line, nxt)
        if heading is not None:
            sections.append(_Section(heading, len(sections)))
            paragraphs.append("")
            item_indent = None
            continue
        if _RULE.match(line):
            continue  # a setext underline or a horizontal rule
        if not line.strip():
            paragraphs.append("")
            continue
        paragraphs[-1] = f"{paragraphs[-1]} {line.strip()}".strip()
        section = sections[-1]
        item = _item(line)
        if item is not None:
            indent, number, text = item
            if item_indent is None or indent <= item_indent:
                item_indent = indent
                section.items.append(Requirement(text=text, section=section.title, section_index=section.index,
                                                 number=number))
            else:
                section.items[-1].points.append(clean(text))
        elif section.items and item_indent is not None and (line[:1].isspace() or lines[i - 1].strip()):
            section.items[-1].text += " " + line.strip()  # continuation of the item above
        else:
            item_indent = None
            section.text.append(line.strip())
    return sections, paragraphs


def _heading(line: str, nxt: str) -> str | None:
    atx = _ATX.match(line)
    if atx:
        return clean(atx.group(2))
    if line.strip() and _SETEXT.match(nxt) and not _item(line):
        return clean(line)
    return None


def _item(line: str) -> tuple[int, int | None, str] | None:
    """(indent, written number or None, text) of a list item line."""
    numbered = _NUMBERED.match(line)
    if numbered:
        indent = len(numbered.group(1).expandtabs(4))
        sub = numbered.group(6)
        if sub:  # "1.2 Login": an outline number, nested one level per dot
            return indent + 2 * sub.count("."), None, numbered.group(8)
        number = next((numbered.group(k) for k in (2, 3, 4, 7) if numbered.group(k)), None)
        return indent, int(number) if number else None, numbered.group(8)
    bullet = _BULLET.match(line)
    if bullet:
        return len(bullet.group(1).expandtabs(4)), None, bullet.group(2)
    return None


def _from_sections(sections: list[_Section], skip_context: bool) -> list[Requirement]:
    found = []
    for section in sections:
        if skip_context and _CONTEXT_SECTIONS.match(section.title):
            continue
        if section.items:
            found.extend(section.items)
        elif section.title and section.text:
            found.append(Requirement(text=f"{section.title}: {' '.join(section.text)}", section=section.title,
                                     section_index=section.index))
    return found


# ---- dependencies and tasks -----------------------------------------------------------------------
def _dependencies(reqs: list[Requirement], titles: list[str]) -> list[set[int]]:
    """For each requirement, the earlier requirements (by index) it depends on."""
    title_words = [words(t) for t in titles]
    deps: list[set[int]] = []
    for i, req in enumerate(reqs):
        found: set[int] = set()
        for number, phrase in mentions(" ".join([req.text, *req.points])):
            target = _by_number(reqs, i, number) if number is not None else best_match(words(phrase), title_words[:i])
            if target is not None:
                found.add(target)
        if not found and i > 0 and reqs[i - 1].section_index == req.section_index:
            found.add(i - 1)  # document order within a section
        deps.append(found)
    return deps


def _by_number(reqs: list[Requirement], i: int, number: int) -> int | None:
    """The nearest earlier requirement written with that number, else the number-th requirement."""
    for j in range(i - 1, -1, -1):
        if reqs[j].number == number:
            return j
    return number - 1 if 0 < number <= i else None


def _task(parts: list[Requirement], titles: list[str], task_id: int, dependencies: list[int],
          default_priority: str) -> dict:
    lead = parts[0]
    title = titles[0] or f"Requirement {task_id}"
    description = description_of(lead.text, title) or title
    if len(parts) > 1:
        description = "Covers: " + "; ".join(titles)
    details = "\n\n".join(_details(p) for p in parts)
    checks = titles[:6] if len(parts) > 1 else [title_of(x) for x in lead.points[:6]] or [title]
    return {
        "id": task_id, "title": title, "description": description, "details": details,
        "testStrategy": "Test that each part works as the PRD describes, including invalid input and failure "
                        "cases: " + "; ".join(checks) + ".",
        "priority": max((priority_of(" ".join([p.text, *p.points]), default_priority) for p in parts),
                        key=_RANK.__getitem__),
        "dependencies": dependencies, "status": "pending",
    }


_RANK = {"low": 0, "medium": 1, "high": 2}


def _details(req: Requirement) -> str:
    lines = [clean(req.text), *(f"- {p}" for p in req.points)]
    if req.section:
        lines.append(f"(PRD section: {req.section})")
    return "\n".join(lines)
