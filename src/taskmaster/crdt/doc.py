"""The one CRDT everything is made of: a document of LWW fields, add-wins sets and child documents.

A task is a `Doc` whose fields are the task's scalar fields, whose set "dependencies" is an
add-wins OR-set, and whose children are its subtasks (each a `Doc` of the same shape). Tag metadata
and project state are `Doc`s with fields only. Every mutation is expressed as a small delta `Doc`
and applied with `merge`, so replicas that have merged the same deltas in any order, any number of
times, hold equal documents, and `encode` gives them byte-identical bytes.

- Field register: `(ts, node, present, value)`. The greater `(ts, node)` wins; on an exact tie (which
  a correct clock never produces) the greater canonical encoding wins, so merge stays commutative.
  `present=False` is a field removal that still carries a timestamp.
- OR-set element: `(adds, removes)`, two frozensets of dots `(ts, node)`. The element is in the set
  while some add is not removed: a remove cancels only the adds it observed, so add wins over a
  concurrent remove.
- Deletion of a whole document is the field `~del` set to true (a tombstone: it still merges).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

Dot = tuple[int, str]
Reg = tuple[int, str, bool, Any]
Elem = int | str

DELETED = "~del"  # tombstone field of a document
FORMAT = 1
"""The encoding of a document (in RocksDB and on the wire): format 1 is the bare array [fields, sets,
children]. A later format appends its number as a fourth item, so that `decode` tells them apart and
a data dir can be migrated. Replicas compare documents by their encoded bytes (anti-entropy), so a
new format is written only once every member reads it (a protocol version)."""


def canonical(value: Any) -> Any:
    """Value with dict keys sorted recursively, so equal values encode to equal bytes."""
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value, key=_key_order)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def _key_order(k: Any) -> tuple:
    """Ints first, then "P.S" ids in numeric order ("2.1" before "10.1"), then other strings."""
    if isinstance(k, int):
        return (0, k, 0, "")
    head, dot, tail = str(k).partition(".")
    if dot and head.isdecimal() and tail.isdecimal():  # not isdigit: int("²") fails
        return (1, int(head), int(tail), str(k))  # raw text breaks ties ("01.2" vs "1.2")
    return (2, 0, 0, str(k))


def _pack(value: Any) -> bytes:
    return msgpack.packb(canonical(value), use_bin_type=True)


def reg_wins(a: Reg, b: Reg) -> bool:
    """True when register `a` beats `b`."""
    if a[0] != b[0]:
        return a[0] > b[0]
    if a[1] != b[1]:
        return a[1] > b[1]
    va, vb = a[3], b[3]
    if a[2] == b[2] and type(va) is type(vb) and type(va) in _PLAIN and va == vb:
        return False  # the same register (what a replica gets back); floats and containers go the long way
    return _pack([a[2], a[3]]) > _pack([b[2], b[3]])


_PLAIN = frozenset((str, int, bool, type(None)))


@dataclass(slots=True)
class Doc:
    fields: dict[str, Reg] = field(default_factory=dict)
    sets: dict[str, dict[Elem, tuple[frozenset[Dot], frozenset[Dot]]]] = field(default_factory=dict)
    children: dict[str, Doc] = field(default_factory=dict)

    # ---- reading -------------------------------------------------------------------------------
    def get(self, name: str, default: Any = None) -> Any:
        reg = self.fields.get(name)
        return reg[3] if reg is not None and reg[2] else default

    def members(self, name: str) -> list[Elem]:
        """Elements of set `name`, ints ascending then strings in order."""
        elems = self.sets.get(name, {})
        return sorted((e for e, (adds, rems) in elems.items() if adds - rems), key=_key_order)

    def dots(self, name: str, elem: Elem) -> frozenset[Dot]:
        """The live add-dots of one element: what a remove must cancel."""
        adds, rems = self.sets.get(name, {}).get(elem, (frozenset(), frozenset()))
        return adds - rems

    @property
    def deleted(self) -> bool:
        return bool(self.get(DELETED, False))

    def values(self) -> dict[str, Any]:
        """Present fields as a plain dict (system fields starting with '~' included)."""
        return {k: r[3] for k, r in self.fields.items() if r[2]}

    def is_empty(self) -> bool:
        return not (self.fields or self.sets or self.children)

    # ---- delta construction ----------------------------------------------------------------------
    def set(self, name: str, value: Any, ts: int, node: str) -> Doc:
        self.fields[name] = (ts, node, True, value)
        return self

    def unset(self, name: str, ts: int, node: str) -> Doc:
        self.fields[name] = (ts, node, False, None)
        return self

    def add(self, name: str, elem: Elem, ts: int, node: str) -> Doc:
        adds, rems = self.sets.setdefault(name, {}).get(elem, (frozenset(), frozenset()))
        self.sets[name][elem] = (adds | {(ts, node)}, rems)
        return self

    def remove(self, name: str, elem: Elem, observed: frozenset[Dot]) -> Doc:
        adds, rems = self.sets.setdefault(name, {}).get(elem, (frozenset(), frozenset()))
        self.sets[name][elem] = (adds, rems | observed)
        return self

    def child(self, key: str) -> Doc:
        """The child delta under `key`, created empty if missing."""
        return self.children.setdefault(key, Doc())


def latest(doc: Doc) -> int:
    """The greatest timestamp in `doc`: a clock that observes it stamps later writes after it."""
    best = max((reg[0] for reg in doc.fields.values()), default=0)
    for elems in doc.sets.values():
        for adds, rems in elems.values():
            for dot in adds | rems:
                best = max(best, dot[0])
    for child in doc.children.values():
        best = max(best, latest(child))
    return best


def merge(a: Doc, b: Doc) -> Doc:
    """The join of two documents. Pure: neither argument is changed."""
    out = Doc(dict(a.fields), {k: dict(v) for k, v in a.sets.items()}, dict(a.children))
    merge_into(out, b, copy_children=True)
    return out


def merge_into(target: Doc, delta: Doc, copy_children: bool = False) -> bool:
    """Join `delta` into `target` in place; returns whether `target` changed.

    `copy_children` makes children that `target` shares with another document be copied before they
    are changed (used by the pure `merge`).
    """
    changed = False
    for name, reg in delta.fields.items():
        cur = target.fields.get(name)
        # Not `cur != reg`: registers that compare equal may still differ on the wire (1 and 1.0,
        # 0.0 and -0.0); only the total order of `reg_wins` keeps merge commutative on such ties.
        if cur is None or (cur is not reg and reg_wins(reg, cur)):
            target.fields[name] = reg
            changed = True
    for name, elems in delta.sets.items():
        mine = target.sets.setdefault(name, {})
        for elem, (adds, rems) in elems.items():
            cur = mine.get(elem)
            if cur is None:
                mine[elem] = (adds, rems)
                changed = True
            else:
                new = (cur[0] | adds, cur[1] | rems)
                if new != cur:
                    mine[elem] = new
                    changed = True
    for key, sub in delta.children.items():
        cur = target.children.get(key)
        if cur is None:
            target.children[key] = merge(Doc(), sub)
            changed = True
        else:
            if copy_children:
                cur = target.children[key] = merge(cur, Doc())
            changed = merge_into(cur, sub, copy_children) or changed
    return changed


# ---- encoding --------------------------------------------------------------------------------------
def to_wire(doc: Doc) -> list:
    """Canonical plain form: everything sorted, so equal documents give equal bytes."""
    fields = [[k, *_reg_wire(doc.fields[k])] for k in sorted(doc.fields)]
    sets = [
        [name, [[e, sorted(a), sorted(r)] for e, (a, r) in sorted(elems.items(), key=lambda i: _key_order(i[0]))]]
        for name, elems in sorted(doc.sets.items())
    ]
    children = [[k, to_wire(doc.children[k])] for k in sorted(doc.children)]
    return [fields, sets, children]


_SCALARS = (str, int, float, bool, type(None))


def _reg_wire(reg: Reg) -> list:
    value = reg[3]
    return [reg[0], reg[1], reg[2], value if value.__class__ in _SCALARS else canonical(value)]


def from_wire(raw: list) -> Doc:
    fields_raw, sets_raw, children_raw = raw
    doc = Doc()
    for name, ts, node, present, value in fields_raw:
        doc.fields[name] = (ts, node, present, value)
    for name, elems in sets_raw:
        doc.sets[name] = {
            e: (frozenset((d[0], d[1]) for d in a), frozenset((d[0], d[1]) for d in r)) for e, a, r in elems
        }
    for key, sub in children_raw:
        doc.children[key] = from_wire(sub)
    return doc


def encode(doc: Doc) -> bytes:
    return msgpack.packb(to_wire(doc), use_bin_type=True)


def decode(data: bytes) -> Doc:
    raw = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if len(raw) != 3:
        raise ValueError(f"document format {raw[3] if len(raw) > 3 else '?'} is not {FORMAT}, the one this "
                         "node reads")
    return from_wire(raw)
