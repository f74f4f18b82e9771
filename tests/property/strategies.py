"""Shared hypothesis strategies and small replica simulators for the CRDT property tests.

Two kinds of documents are generated:
- realistic ones, grown by random operations (set/unset/add/remove/child edits, syncs) on several
  replicas whose HLCs read skewed fake clocks, exactly as nodes would produce them;
- adversarial ones (`arbitrary_docs`), random lattice states whose stamps collide on purpose with
  values that are equal in Python but not on the wire (1, 1.0, True; 0.0, -0.0), to hold the
  tie-break to its promise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from hypothesis import settings
from hypothesis import strategies as st

from taskmaster.crdt.doc import Doc, encode, latest, merge, reg_wins
from taskmaster.crdt.hlc import HLC
from taskmaster.crdt.taskdoc import task_delta, view

NODES = ("n1", "n2", "n3", "n4", "n5")
EPOCH_MS = 1_700_000_000_000

# ---- JSON values ---------------------------------------------------------------------------------
# Hypothesis costs about a millisecond per example here, so values are mostly picked from a list
# (chosen to collide: equal in Python yet different on the wire, what an exact stamp tie must still
# order) and only sometimes generated in full.
PICKED = [0, 0.0, -0.0, 1, 1.0, True, False, None, "", "a", "é\u2028", [1], [1.0], {"k": 1}, {"k": True}]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
# Strings that look like "P.S" ids, with any kind of digit ("²" is a digit to str.isdigit, not to int).
digitish = st.builds(lambda a, b: f"{a}.{b}", *[st.text(st.characters(categories=("Nd", "No")), min_size=1,
                                                         max_size=2)] * 2)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3) | digitish, inner,
                                                                max_size=3),
    max_leaves=3,
)
picked = st.sampled_from(PICKED)
values = picked | json_values

# Every strategy is built once, here: building strategies inside a draw costs more than drawing.
# Choices that depend on the data drawn so far take a number from INDEX modulo the choice count.
INDEX = st.integers(0, 63)
T = TypeVar("T")
Draw = Callable[[st.SearchStrategy], Any]


def scaled(fraction: float) -> int:
    """A share of the loaded profile's max_examples, for tests whose examples are expensive."""
    return max(10, int(settings.default.max_examples * fraction))


def pick(draw: Draw, seq: Sequence[T]) -> T:
    return seq[draw(INDEX) % len(seq)]


def shuffled(draw: Draw, seq: Sequence[T]) -> list[T]:
    out = list(seq)
    for i in range(len(out) - 1, 0, -1):
        j = draw(INDEX) % (i + 1)
        out[i], out[j] = out[j], out[i]
    return out


def strict(value: Any) -> str:
    """A text form that tells 1 from 1.0 from True and -0.0 from 0.0 (dict key order ignored)."""
    return json.dumps(value, sort_keys=True)


_SUBTASK_REF = re.compile(r"(\d+)\.(\d+)")


def dep_order(elem: int | str) -> tuple:
    """Dependencies come back sorted: task ids, then "P.S" ids numerically, then anything else."""
    if isinstance(elem, int):
        return (0, elem, 0, "")
    ref = _SUBTASK_REF.fullmatch(elem)
    return (1, int(ref[1]), int(ref[2]), elem) if ref else (2, 0, 0, elem)


def normalized(task: dict) -> dict:
    """`task` as a document materializes it: dependencies as a sorted set, in task and subtasks."""
    out = dict(task, dependencies=sorted(set(task.get("dependencies", [])), key=dep_order))
    out["subtasks"] = [dict(s, dependencies=sorted(set(s.get("dependencies", [])), key=dep_order))
                       for s in task.get("subtasks", [])]
    return out


# ---- clocks --------------------------------------------------------------------------------------
class FakeClock:
    """Wall-clock milliseconds that move only when told to."""

    def __init__(self, ms: int = EPOCH_MS):
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def skewed(clock: FakeClock, skew: int):
    return lambda: clock.ms + skew


# ---- lattice order ----------------------------------------------------------------------------
def covers(big: Doc, small: Doc) -> bool:
    """big ⊒ small: every register of `small` is in `big` or beaten there, every dot is kept."""
    for name, reg in small.fields.items():
        cur = big.fields.get(name)
        if cur is None or (encode(Doc({name: cur})) != encode(Doc({name: reg})) and not reg_wins(cur, reg)):
            return False
    for name, elems in small.sets.items():
        for elem, (adds, rems) in elems.items():
            cur = big.sets.get(name, {}).get(elem)
            if cur is None or not (adds <= cur[0] and rems <= cur[1]):
                return False
    return all(key in big.children and covers(big.children[key], child)
               for key, child in small.children.items())


# ---- raw document operations ---------------------------------------------------------------------
# An operation is drawn as one integer and decoded (one draw instead of six: generation is what
# costs here). Shrinking still works: shorter lists, smaller codes, simpler operations.
PATHS = ((), ("c1",), ("c2",), ("c1", "g"))
FIELD_NAMES = ("f", "g", "~del", "~pos")
SET_NAMES = ("s", "dependencies")
ELEMENTS = (0, 1, 2, 3, 4, "1.1", "1.2", "10.1", "01.1", "x")
elements = st.sampled_from(ELEMENTS)
_OP_KINDS = ("set", "add", "remove", "sync", "set", "unset", "add", "remove", "sync", "tick")
op_codes = st.integers(0, 2**24 - 1)


def _digits(code: int, *bases: int) -> list[int]:
    out = []
    for base in bases:
        code, digit = divmod(code, base)
        out.append(digit)
    return out


def decode_op(code: int) -> tuple:
    """One raw operation: (kind, replica, path, name, value or element) or ("sync", to, from) or
    ("tick", ms). Replica numbers are taken modulo the number of replicas."""
    k, node, other, path, name, setname, item = _digits(code, len(_OP_KINDS), len(NODES), len(NODES), len(PATHS),
                                                       len(FIELD_NAMES), len(SET_NAMES), len(PICKED) * len(ELEMENTS))
    kind = _OP_KINDS[k]
    if kind == "tick":
        return ("tick", other % 4)
    if kind == "sync":
        return ("sync", node, other)
    if kind == "set":
        return ("set", node, PATHS[path], FIELD_NAMES[name], PICKED[item % len(PICKED)])
    if kind == "unset":
        return ("unset", node, PATHS[path], FIELD_NAMES[name])
    return (kind, node, PATHS[path], SET_NAMES[setname], ELEMENTS[item % len(ELEMENTS)])


skews = st.lists(st.integers(-3, 3), min_size=len(NODES), max_size=len(NODES))


def _at(doc: Doc, path: Iterable[str]) -> Doc:
    for key in path:
        doc = doc.child(key)
    return doc


def _lookup(doc: Doc, path: Iterable[str]) -> Doc | None:
    for key in path:
        doc = doc.children.get(key)
        if doc is None:
            return None
    return doc


class Replicas:
    """`n` replicas of one document; each local operation is a delta merged locally and logged."""

    def __init__(self, n: int, skews: Sequence[int] = (0,) * len(NODES)):
        self.n = n
        self.clock = FakeClock()
        self.hlcs = [HLC(NODES[i], clock=skewed(self.clock, skews[i])) for i in range(n)]
        self.docs = [Doc() for _ in range(n)]
        self.deltas: list[Doc] = []
        self.history: list[tuple] = []  # what happened, shown when a counterexample is printed
        self._fresh = 0

    def __repr__(self) -> str:
        lines = []
        for event in self.history:
            if event[0] == "edit":
                lines.append(f"{NODES[event[1]]} edits (delta {event[2]}): {event[3]!r}, subtasks from {event[4]}")
            elif event[0] == "merge":
                lines.append(f"{NODES[event[1]]} merges {event[2]}")
            else:
                lines.append(repr(event))
        return "Replicas(\n  " + "\n  ".join(lines) + "\n)"

    def local(self, i: int, delta: Doc) -> Doc:
        self.docs[i] = merge(self.docs[i], delta)
        self.deltas.append(delta)
        return delta

    def receive(self, i: int, doc: Doc) -> None:
        self.history.append(("merge", i, _source(self, doc)))
        self.hlcs[i].observe(latest(doc))
        self.docs[i] = merge(self.docs[i], doc)

    def stamp(self, i: int) -> tuple[int, str]:
        return self.hlcs[i].now(), self.hlcs[i].node

    def fresh_key(self, i: int) -> str:
        """A new subtask key, unique across replicas (the service uses random hex)."""
        self._fresh += 1
        return f"{NODES[i]}-{self._fresh}"

    # ---- raw operations -------------------------------------------------------------------------
    def apply(self, op: tuple) -> None:
        """Run one `decode_op` operation (replica numbers are taken modulo n)."""
        kind = op[0]
        if kind == "tick":
            self.history.append(op)
            self.clock.ms += op[1]
            return
        i = op[1] % self.n
        if kind == "sync":
            self.receive(i, self.docs[op[2] % self.n])
            return
        self.history.append((kind, NODES[i], *op[2:]))
        path, name = op[2], op[3]
        delta = Doc()
        target = _at(delta, path)
        ts, node = self.stamp(i)
        if kind == "set":
            target.set(name, op[4], ts, node)
        elif kind == "unset":
            target.unset(name, ts, node)
        elif kind == "add":
            target.add(name, op[4], ts, node)
        else:
            seen = _lookup(self.docs[i], path)
            target.remove(name, op[4], seen.dots(name, op[4]) if seen is not None else frozenset())
        self.local(i, delta)

    # ---- task operations ------------------------------------------------------------------------
    def create_everywhere(self, task: dict) -> None:
        """Replica 0 creates `task` and every other replica receives it."""
        created = self.edit_task(0, task, [None] * len(task["subtasks"]))
        for i in range(1, len(self.docs)):
            self.receive(i, created)

    def edit_task(self, i: int, new: dict | None, origin: list[int | None]) -> Doc:
        """Replace replica i's task by `new` (None deletes); `origin[j]` is the index in the current
        view of the subtask `new["subtasks"][j]` came from, or None for a new one."""
        doc = self.docs[i]
        old, keys = view(doc)
        self.history.append(("edit", i, len(self.deltas), new, origin))
        new_keys = [keys[o] if o is not None else self.fresh_key(i) for o in origin]
        ts, node = self.stamp(i)
        return self.local(i, task_delta(doc, old, new, new_keys, ts, node))


def _source(replicas: Replicas, doc: Doc) -> str:
    for j, d in enumerate(replicas.deltas):
        if d is doc:
            return f"delta {j}"
    for j, d in enumerate(replicas.docs):
        if d is doc:
            return f"the state of {NODES[j]}"
    return "a document"


@st.composite
def _histories(draw) -> Replicas:
    replicas = Replicas(3, draw(skews))
    for code in draw(st.lists(op_codes, max_size=10)):
        replicas.apply(decode_op(code))
    return replicas


histories = _histories()  # three replicas after random raw operations


def sample_docs(draw: Draw, replicas: Replicas, count: int) -> list[Doc]:
    """`count` documents of one history: replica states and the deltas that built them."""
    pool = replicas.docs + replicas.deltas
    return [pick(draw, pool) for _ in range(count)]


def _doc_samples(count: int) -> st.SearchStrategy[list[Doc]]:
    return st.composite(lambda draw: sample_docs(draw, draw(histories), count))()


# ---- adversarial documents -----------------------------------------------------------------------
# Stamps from a tiny range so that registers and dots collide on purpose; one code per register
# or set element, as for operations.
TIE_DOTS = tuple((ts, node) for ts in range(3) for node in ("a", "b"))


def decode_register(code: int) -> tuple:
    ts, node, unset, value = _digits(code, 3, 2, 4, len(PICKED))  # one in four is an unset
    return (ts, "ab"[node], False, None) if unset == 0 else (ts, "ab"[node], True, PICKED[value])


def _dot_set(mask: int) -> frozenset:
    return frozenset(d for i, d in enumerate(TIE_DOTS) if mask >> i & 1)


def _arbitrary_doc(field_codes: list[int], set_codes: list[int], children: list[tuple] = ()) -> Doc:
    doc = Doc()
    for code in field_codes:
        name, reg = _digits(code, len(FIELD_NAMES), 1 << 20)
        doc.fields[FIELD_NAMES[name]] = decode_register(reg)
    for code in set_codes:
        name, elem, adds, rems = _digits(code, len(SET_NAMES), len(ELEMENTS), 64, 64)
        doc.sets.setdefault(SET_NAMES[name], {})[ELEMENTS[elem]] = (_dot_set(adds), _dot_set(rems))
    for key, child in children:
        doc.children[key] = child
    return doc


_codes = st.lists(op_codes, max_size=3)
_leaf_docs = st.builds(_arbitrary_doc, _codes, _codes)
arbitrary_docs = st.builds(_arbitrary_doc, _codes, _codes,
                           st.lists(st.tuples(st.sampled_from(("c1", "c2")), _leaf_docs), max_size=2))
registers = op_codes.map(decode_register)
# Documents holding any JSON value (the law tests mostly use picked values, which are cheaper).
valued_docs = st.builds(Doc, st.dictionaries(st.sampled_from(FIELD_NAMES), st.builds(
    lambda ts, v: (ts, "n1", True, v), st.integers(0, 2**63 - 1), json_values), max_size=3))
any_docs = arbitrary_docs | _doc_samples(1).map(lambda docs: docs[0])
pairs = _doc_samples(2) | st.lists(arbitrary_docs, min_size=2, max_size=2)
triples = _doc_samples(3) | st.lists(arbitrary_docs, min_size=3, max_size=3)

# ---- plain tasks ---------------------------------------------------------------------------------
# Drawn from integer codes too: a task is a handful of draws, not a hundred.
STATUSES = ("pending", "in-progress", "done", "review", "deferred", "cancelled", "blocked")
WORDS = ("", "Set up", "Écrire", "x", "tâche 🚀", "a\u2028b", "Add tests", "x" * 40)
TASK_FIELDS = ("title", "description", "status", "details", "testStrategy", "priority", "metadata",
               "updatedAt", "complexity")
SUBTASK_FIELDS = ("id", "title", "description", "status", "details", "testStrategy", "updatedAt")
FIELD_VALUES = WORDS + tuple(PICKED)
short_text = st.sampled_from(WORDS) | st.text(max_size=4)
subtask_refs = st.builds(lambda p, s: f"{p}.{s}", st.integers(1, 12), st.integers(1, 6))
task_deps = st.lists(st.integers(1, 12) | subtask_refs, max_size=4)  # for the service model
subtask_deps = st.lists(st.integers(1, 6) | subtask_refs, max_size=3)
_dep_codes = st.lists(st.integers(0, 12 + 12 * 6 - 1), max_size=4)


def _dep(code: int, ints: int) -> int | str:
    """A dependency: a task id 1..ints, else a "P.S" subtask reference (P 1..12, S 1..6)."""
    if code < ints:
        return code + 1
    p, s = divmod(code - ints, 6)
    return f"{p % 12 + 1}.{s + 1}"


def _value(name: str, code: int) -> Any:
    return STATUSES[code % len(STATUSES)] if name == "status" else FIELD_VALUES[code % len(FIELD_VALUES)]


def draw_subtask(draw: Draw, sub_id: int) -> dict:
    title, description, status, extras, value = _digits(draw(op_codes), len(WORDS), len(WORDS), len(STATUSES),
                                                         8, len(FIELD_VALUES))
    sub = {"id": sub_id, "title": WORDS[title], "description": WORDS[description], "status": STATUSES[status],
           "dependencies": [_dep(c, 6) for c in draw(_dep_codes)]}
    for bit, name in enumerate(SUBTASK_FIELDS[4:]):
        if extras >> bit & 1:
            sub[name] = FIELD_VALUES[(value + bit) % len(FIELD_VALUES)]
    return sub


def draw_task(draw: Draw, task_id: int | None = None, max_subtasks: int = 4) -> dict:
    tid, description, status, extras, value = _digits(draw(op_codes), 12, len(WORDS), len(STATUSES), 64,
                                                      len(FIELD_VALUES))
    task = {"id": task_id if task_id is not None else tid + 1, "title": draw(short_text),
            "description": WORDS[description], "status": STATUSES[status],
            "dependencies": [_dep(c, 12) for c in draw(_dep_codes)]}
    for bit, name in enumerate(TASK_FIELDS[3:]):
        if extras >> bit & 1:
            task[name] = FIELD_VALUES[(value + bit) % len(FIELD_VALUES)]
    task["subtasks"] = [draw_subtask(draw, i + 1) for i in range(draw(INDEX) % (max_subtasks + 1))]
    return task


plain_tasks = st.composite(lambda draw: draw_task(draw))()
plain_subtasks = st.composite(lambda draw: draw_subtask(draw, draw(INDEX) % 12 + 1))()


def _edit_fields(draw: Draw, obj: dict, names: tuple[str, ...], ints: int) -> dict:
    """Up to three fields set or removed; maybe dependencies kept in part, added to, reordered."""
    out = dict(obj)
    for code in draw(st.lists(op_codes, max_size=3)):
        name, delete, value = _digits(code, len(names), 3, 1 << 10)
        if delete == 0:
            out.pop(names[name], None)
        else:
            out[names[name]] = _value(names[name], value)
    if draw(st.booleans()):
        kept_mask = draw(op_codes)
        kept = [d for i, d in enumerate(out.get("dependencies", [])) if kept_mask >> i & 1]
        out["dependencies"] = shuffled(draw, kept + [_dep(c, ints) for c in draw(_dep_codes)])
    return out


def draw_edit(draw: Draw, old: dict) -> tuple[dict, list[int | None]]:
    """A random edit of `old`: fields set/removed, dependencies changed, subtasks removed, edited,
    reordered and added. Returns the new task and, per new subtask, its index in `old` (or None)."""
    new = _edit_fields(draw, old, TASK_FIELDS, 12)
    subs = old.get("subtasks", [])
    plan = draw(op_codes)  # per old subtask: removed (1 in 5), edited, or kept as it is
    origin: list[int | None] = [i for i in range(len(subs)) if (plan >> 3 * i) % 5]
    edited = {i for i in origin if plan >> 3 * i & 4}
    if draw(st.booleans()):
        origin = shuffled(draw, origin)
    new_subs = [_edit_fields(draw, subs[i], SUBTASK_FIELDS, 6) if i in edited else subs[i] for i in origin]
    for _ in range(draw(INDEX) % 3):
        at = draw(INDEX) % (len(new_subs) + 1)
        new_subs.insert(at, draw(plain_subtasks))
        origin.insert(at, None)
    new["subtasks"] = new_subs
    return new, origin


def draw_task_op(draw: Draw, replicas: Replicas, i: int, deletes: bool = True) -> None:
    """Replica i edits its task (1 in 10 deletes it when allowed); a deleted task gets re-created."""
    task, _ = view(replicas.docs[i])
    if task is None:
        new = draw_task(draw)
        replicas.edit_task(i, new, [None] * len(new["subtasks"]))
    elif deletes and draw(INDEX) % 10 == 0:
        replicas.edit_task(i, None, [])
    else:
        replicas.edit_task(i, *draw_edit(draw, task))


def _task_histories(deletes: bool) -> st.SearchStrategy[Replicas]:
    """One task edited on 1-3 replicas with partial syncs (so its document holds concurrent edits,
    dependencies with several dots, moved and removed subtasks); replica 0 is the one to test."""

    def build(draw) -> Replicas:
        n = draw(INDEX) % 3 + 1
        replicas = Replicas(n, draw(skews))
        replicas.create_everywhere(draw_task(draw))
        for _ in range(draw(INDEX) % 5):
            i = draw(INDEX) % n
            if draw(INDEX) % 3 == 0:
                replicas.receive(i, replicas.docs[draw(INDEX) % n])
            else:
                draw_task_op(draw, replicas, i, deletes)
            replicas.clock.ms += draw(INDEX) % 3
        if draw(st.booleans()):
            for j in range(1, n):
                replicas.receive(0, replicas.docs[j])
        return replicas

    return st.composite(build)()


task_histories = _task_histories(deletes=True)
live_task_histories = _task_histories(deletes=False)
