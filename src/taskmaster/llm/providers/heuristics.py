"""Plain-text heuristics for the offline planner: sentences, titles, words, likeness, priority
words and dependency mentions. Deterministic and language-tolerant (Unicode words; CJK text is
compared by character pairs), but heuristics: they read structure and keywords, not meaning.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=[。！？])")
_MARKUP = re.compile(r"\*\*|__|`|~~|\[[ xX]\]\s*")
_LABEL = re.compile(r"^(?:(?:FR|NFR|REQ|US|R|F)[-_ ]?\d+(?:\.\d+)*|(?:requirement|req|story|feature)\s*#?\d+)"
                    r"\s*[:.)\-–]\s*", re.I)
_HEAD_SEPARATOR = re.compile(r"\s*(?::|：|\s[-–—]\s)\s*")
_WORD = re.compile(r"\w+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_STOP = frozenset((
    "the", "and", "for", "with", "that", "this", "from", "into", "onto", "are", "was", "were", "will",
    "shall", "should", "must", "can", "could", "may", "might", "have", "has", "had", "not", "but", "all",
    "any", "each", "its", "their", "them", "they", "than", "then", "there", "these", "those", "when",
    "where", "which", "who", "what", "why", "how", "our", "your", "you", "able", "also", "more", "most",
    "such", "only", "very", "via", "per", "use", "using", "used", "been", "being",
))

# Priority words, strongest first. English plus a few common others; anything else is the default.
_HIGH = re.compile(r"\b(must|critical|crucial|essential|required|mandatory|blocker|security|p0|mvp|core)\b"
                   r"|muss|doit|obligatoire|必须|必須|重要|必要", re.I)
_LOW = re.compile(r"\b(could|optional|nice[- ]to[- ]have|later|future|eventually|stretch|p2|p3|wishlist)\b"
                  r"|optionnel|später|可选|任意", re.I)

# "after 3", "depends on task 2", "requires the login API", "nach 4", "après 2", "依赖 3" ...
_MENTION = re.compile(
    r"(?:\b(?:after|depends?\s+on|dependent\s+on|requires?|required\s+by|needs?|once|following|"
    r"builds?\s+on|blocked\s+by|prerequisites?:?|nach|erfordert|hängt\s+von|après|nécessite|dépend\s+de|"
    r"después\s+de|requiere|depende\s+de)\b|依赖|之后|需要|後に)"
    r"\s*(?:the\s+|das\s+|der\s+|die\s+|le\s+|la\s+|el\s+)?"
    r"(?:(?:task|step|item|requirement|req|phase|stage|#|no\.?|nr\.?|aufgabe|tâche|tarea|任务|タスク)\s*)?"
    r"(?:(#?\d+)\b|((?:(?!\s(?:and|or|then|und|oder|et|ou|y|o)\s)[^.;:,()\n。；：，]){1,60}))", re.I)


_CLAUSE_END = re.compile(r"[,;(–—-]\s*$|[，；（]$")
_CLAUSE_MARK = re.compile(r"[,;(–—，；（-]")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _first_sentence(text: str) -> str:
    end = _SENTENCE_END.search(text)
    return (text[:end.start()] if end else text).strip()


def clean(text: str) -> str:
    """Markdown emphasis, checkboxes and requirement labels ("FR-3:") removed; spaces collapsed."""
    text = _MARKUP.sub("", text)
    text = _LABEL.sub("", text.strip())
    return " ".join(text.split())


def title_of(text: str, limit: int = 80) -> str:
    """A short title: the head before a colon or dash, else the first sentence, cut at a word."""
    first = _first_sentence(clean(text))
    head = _HEAD_SEPARATOR.split(first, maxsplit=1)[0]
    if 3 <= len(head) < len(first):
        first = head
    mention = _MENTION.search(first) if _CLAUSE_MARK.search(first) else None
    if mention and _CLAUSE_END.search(first[:mention.start()]) and mention.start() >= 3:
        first = first[:mention.start()]  # "Task lists, after login" -> "Task lists"
    first = first.rstrip(" .,;:!?。；：(–-")
    if len(first) > limit:
        cut = first[:limit].rsplit(" ", 1)[0] if " " in first[:limit] else first[:limit]
        first = cut.rstrip(" ,;:") + "…"
    return first[:1].upper() + first[1:] if first else ""


def description_of(text: str, title: str, limit: int = 300) -> str:
    """The first sentence after the title, when the text opens with "Title: ..." or "Title - ..."."""
    text = clean(text)
    head = _HEAD_SEPARATOR.split(text, maxsplit=1)
    if len(head) == 2 and title and head[0].lower().startswith(title.rstrip("…").lower()):
        text = head[1]
    sentence = first_sentence(text, limit)
    return sentence[:1].upper() + sentence[1:]


def first_sentence(text: str, limit: int = 300) -> str:
    sentence = _first_sentence(clean(text))
    return sentence if len(sentence) <= limit else sentence[:limit].rstrip() + "…"


def words(text: str) -> set[str]:
    """Content words for likeness: lowercased words of 3+ letters, numbers, and CJK character pairs."""
    out = set()
    for word in _WORD.findall(text.lower()):
        if _CJK.search(word):
            chars = [c for c in word if not c.isdigit()]
            out.update(a + b for a, b in zip(chars, chars[1:], strict=False))
        elif (len(word) >= 3 or word.isdigit()) and word not in _STOP:
            out.add(word)  # numbers count: "feature 12" is not "feature 13"
    return out


def word_count(text: str) -> int:
    """Words, with CJK text counted as one word per two characters."""
    latin = len(_WORD.findall(_CJK.sub(" ", text)))
    return latin + len(_CJK.findall(text)) // 2


def likeness(a: set[str], b: set[str]) -> float:
    """Overlap of two word sets relative to the smaller one (0..1)."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def best_match(phrase: set[str], candidates: list[set[str]], threshold: float = 0.5) -> int | None:
    """The index of the candidate most like `phrase` (ties: the more exact, then the first), if alike enough."""
    best, best_key = None, (threshold, 0.0)
    for i, candidate in enumerate(candidates):
        score = likeness(phrase, candidate)
        if score < threshold:
            continue
        key = (score, len(phrase & candidate) / len(phrase | candidate))
        if best is None or key > best_key:
            best, best_key = i, key
    return best


def priority_of(text: str, default: str) -> str:
    if _HIGH.search(text):
        return "high"
    if _LOW.search(text):
        return "low"
    return default


def mentions(text: str) -> list[tuple[int | None, str]]:
    """Dependency mentions in order: (number, None-or-phrase) for "after 3", (None, phrase) for words."""
    found = []
    for match in _MENTION.finditer(text):
        number = int(match.group(1).lstrip("#")) if match.group(1) else None
        phrase = (match.group(2) or "").strip()
        if number is not None or words(phrase):
            found.append((number, phrase))
    return found


def points(text: str) -> list[str]:
    """The separate points of a block of text: its list items if it has any, else its sentences."""
    items = [clean(m.group(1)) for m in _ITEM.finditer(text)]
    items = [i for i in items if i]
    return items if items else [clean(s) for s in sentences(text) if clean(s)]


_ITEM = re.compile(r"^\s*(?:[-*+•●▪◦–]|\(?\d{1,3}[.)．）]|\d{1,3}、)\s+(.+)$", re.M)


def balanced_chunks(count: int, groups: int) -> list[range]:
    """`count` items cut into `groups` consecutive runs whose sizes differ by at most one."""
    groups = max(1, min(groups, count))
    return [range(i * count // groups, (i + 1) * count // groups) for i in range(groups)]
