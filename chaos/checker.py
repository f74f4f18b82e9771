"""The checker: pure functions from a run's history and the final reads of every node to verdicts.

Modelled on Jepsen's `set-full` (anchors §6.1): every element an acknowledged write created (a task,
a subtask, a tag, a dependency) must be in the final state of every node once the faults are healed
and the replicas have converged. Elements are identified by the unique marker their write carried,
never by id, because ids are renumbered by moves and by the post-partition repair of duplicate ids.

A dependency is checked only where the final read still has both of its tasks at the ids the write
named (otherwise the write cannot be attributed and is counted as unverifiable). Its absence is
excused by anything that may have taken it away after the add began: a removal of the same
dependency (named by the same tasks or the same ids), a move of a task with either id (references
follow a task moved within a tag and are dropped when it leaves), or a repair record on the
dependent (a cycle closed from both sides of a partition is broken by dropping an edge, visibly).
Task statuses are last-writer-wins registers: a real-time-later write that lost is not a lost
write in an AP store unless it was causally later, which the client cannot see, so those
inversions are reported, not failed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .history import History, Op, marker_in
from .nemesis import DOWN_KINDS, Fault, reachable
from .workload import FINISHED, MASTER, prd_titles

PASS, FAIL, NA, INFO = "pass", "fail", "n/a", "info"
CREATES = ("add_task", "add_work", "add_subtask")
TAG_WRITES = ("add_tag", "copy_tag", "rename_tag", "delete_tag", "move_to_tag")
SUPERVISED_TOOLS = frozenset({"parse_prd", "expand_task", "expand_all", "analyze_project_complexity",
                              "update", "update_task", "update_subtask", "research"})
DETAILS = 20  # examples kept per check
ELEMENTS = ("tasks", "subtasks", "tags", "dependencies")


@dataclass
class FinalState:
    nodes: list[str]  # in index order: n0, n1, ...
    reads: dict[str, dict[str, list[dict]] | None]  # node -> tag -> tasks (None: the node did not answer)
    views: dict[str, dict[str, str] | None]  # node -> its membership view: member -> state
    digests: dict[str, dict[str, str]] | None = None  # node -> partition -> root; None: no /admin/digest
    replicas: int = 3  # copies of each partition expected
    converged_after: float | None = None  # seconds from the final phase's start; None: never
    convergence_method: str = "digests"
    crashed: dict[str, int] = field(default_factory=dict)  # nodes that exited with no fault stopping them
    log_errors: dict[str, int] = field(default_factory=dict)  # error and traceback lines in each node's log
    operations: dict[str, dict | None] | None = None  # operationId -> last status polled; None: not polled


def save_final(final: FinalState, path: Path) -> None:
    path.write_text(json.dumps(dataclasses.asdict(final), separators=(",", ":")))


def load_final(path: Path) -> FinalState:
    return FinalState(**json.loads(path.read_text()))


@dataclass
class Check:
    name: str
    status: str
    summary: str
    figures: dict = field(default_factory=dict)
    details: list = field(default_factory=list)


@dataclass
class Item:
    tag: str
    ref: str  # "5" or "5.2"
    task: dict  # the task, or the subtask
    parent: dict | None = None


@dataclass
class Index:
    """One node's final read, looked up by marker and by (tag, id)."""
    markers: dict[str, list[Item]]  # copies of a tag repeat markers
    refs: dict[tuple[str, str], list[Item]]  # more than one: a duplicate id


def index(tags: dict[str, list[dict]]) -> Index:
    markers: dict[str, list[Item]] = defaultdict(list)
    refs: dict[tuple[str, str], list[Item]] = defaultdict(list)
    for tag, tasks in tags.items():
        for task in tasks:
            items = [Item(tag, str(task["id"]), task)]
            items += [Item(tag, f"{task['id']}.{sub['id']}", sub, task) for sub in task.get("subtasks") or ()]
            for item in items:
                refs[(tag, item.ref)].append(item)
                mark = marker_in(item.task.get("title"))
                if mark:
                    markers[mark].append(item)
    return Index(markers, refs)


def check(history: History, final: FinalState, faults: list[Fault]) -> list[Check]:
    readable = [n for n in final.nodes if final.reads.get(n) is not None]
    indexes = {n: index(final.reads[n]) for n in readable}
    presence = _presence(history, final, readable, indexes)
    return [
        _final_reads(final, readable),
        _stayed_up(final),
        _lost(presence),
        _on_every_node(presence),
        _failed_but_present(history, final, readable, indexes),
        _convergence(final),
        _identical(final, readable),
        _membership(final),
        _claims(history, final, faults),
        _invariants(final, readable),
        _supervised(history, final, readable, indexes),
        _nemesis_applied(history, faults),
        _status_order(history, final, readable, indexes),
    ]


def valid(checks: list[Check]) -> bool:
    return all(c.status != FAIL for c in checks)


# ---- acknowledged writes ------------------------------------------------------------------------
@dataclass
class Presence:
    """Every acknowledged element and the readable nodes that lack it."""
    missing: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))  # class -> [{..., nodes}]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ELEMENTS, 0))  # class -> acknowledged
    unverifiable: int = 0
    excused: int = 0
    readable: int = 0


def _presence(history: History, final: FinalState, readable: list[str], indexes: dict) -> Presence:
    p = Presence(readable=len(readable))
    for op in history.ops:
        if op.outcome != "ok" or op.kind not in CREATES:
            continue
        cls = "subtasks" if op.kind == "add_subtask" else "tasks"
        p.counts[cls] += 1
        absent = [n for n in readable if op.marker not in indexes[n].markers]
        if absent:
            p.missing[cls].append(_example(op, absent, len(readable)))
    for name, op in _definite_tags(history).items():
        p.counts["tags"] += 1
        absent = [n for n in readable if name not in final.reads[n]]
        if absent:
            p.missing["tags"].append({**_example(op, absent, len(readable)), "tag": name})
    _dependencies(history, readable, indexes, p)
    return p


def _example(op: Op, nodes: list[str], checked: int) -> dict:
    """An acknowledged write missing on `nodes` of the `checked` nodes it could be looked for on."""
    return {"marker": op.marker, "kind": op.kind, "via": op.node, "acked_at": round(op.complete, 3),
            "replicas": op.value.get("replicas"), "missing_on": nodes, "checked_on": checked}


def _definite_tags(history: History) -> dict[str, Op]:
    """Tags that must exist: replaying each client's tag writes in order, those an acknowledged write
    created and nothing (acknowledged or not) later renamed or deleted."""
    present: dict[str, Op] = {}
    for op in sorted((o for o in history.ops if o.kind in TAG_WRITES), key=lambda o: (o.client, o.seq)):
        a = op.args
        gone = {"rename_tag": a.get("oldName"), "delete_tag": a.get("name")}.get(op.kind)
        if gone and op.outcome != "error":
            present.pop(gone, None)
        made = {"add_tag": a.get("name"), "copy_tag": a.get("targetName"), "rename_tag": a.get("newName"),
                "move_to_tag": a.get("toTag")}.get(op.kind)
        if made and op.outcome == "ok":
            present[made] = op
    return present


def _dependencies(history: History, readable: list[str], indexes: dict, p: Presence) -> None:
    # What may have taken a dependency away after it was added: its removal (named by the same tasks
    # or the same ids), or a move of a task with either id (references follow a task moved within a
    # tag and are dropped when it leaves the tag; with an id duplicated by a partition, that task
    # may be the dependency's twin).
    undo = defaultdict(list)
    for op in history.ops:
        if op.kind == "remove_dependency" and op.maybe_applied:
            undo[tuple(op.targets)].append(op)
            undo[(op.args["id"], op.args["dependsOn"])].append(op)
        elif op.tool == "move_task" and op.maybe_applied:
            undo[op.args["from"]].append(op)
    for op in history.ops:
        if op.kind != "add_dependency" or op.outcome != "ok":
            continue
        p.counts["dependencies"] += 1
        keys = (tuple(op.targets), (op.args["id"], op.args["dependsOn"]), op.args["id"], op.args["dependsOn"])
        if any(u.complete > op.invoke for key in keys for u in undo[key]):
            p.excused += 1
            continue
        located = [n for n in readable  # both still at the ids the write named
                   if all(_at(indexes[n], m, op.args[k]) for m, k in zip(op.targets, ("id", "dependsOn"), strict=True))]
        # Dependencies are stored as ids: if another task shares the dependent's id (a duplicate
        # left by a partition), the write may have gone to either one.
        holders = {n: indexes[n].refs[(MASTER, op.args["id"])] for n in located}
        absent = [n for n in located if not any(op.args["dependsOn"] in {str(d) for d in h.task.get("dependencies") or ()}
                                                for h in holders[n])]
        if not located:
            p.unverifiable += 1
        elif any((h.task.get("metadata") or {}).get("repairs") for n in absent for h in holders[n]):
            p.excused += 1
        elif absent:
            p.missing["dependencies"].append({**_example(op, absent, len(located)), "edge": list(op.targets)})


def _at(found: Index, mark: str, ref: str) -> Item | None:
    """The master-tag item `mark` if it is still at `ref`."""
    return next((i for i in found.markers.get(mark, ()) if i.tag == MASTER and i.ref == ref), None)


def _lost(p: Presence) -> Check:
    lost = {cls: [x for x in xs if len(x["missing_on"]) == x["checked_on"]] for cls, xs in p.missing.items()}
    total = sum(len(xs) for xs in lost.values())
    figures = {"acknowledged": dict(p.counts), "lost": {cls: len(lost.get(cls, ())) for cls in p.counts},
               "dependencies_unverifiable": p.unverifiable, "dependencies_excused": p.excused}
    details = [x for xs in lost.values() for x in xs][:DETAILS]
    if not p.readable:
        return Check("acknowledged_writes_lost", FAIL, "no node could be read", figures)
    return Check("acknowledged_writes_lost", FAIL if total else PASS,
                 f"{total} of {sum(p.counts.values())} acknowledged writes absent from every node", figures, details)


def _on_every_node(p: Presence) -> Check:
    partial = [x for xs in p.missing.values() for x in xs if len(x["missing_on"]) < x["checked_on"]]
    return Check("acknowledged_writes_on_every_node", FAIL if partial else PASS,
                 f"{len(partial)} acknowledged writes present on some nodes but missing on others",
                 {"partial": len(partial)}, partial[:DETAILS])


def _failed_but_present(history: History, final: FinalState, readable: list[str], indexes: dict) -> Check:
    figures = {"error_present": 0, "error_absent": 0, "unknown_present": 0, "unknown_absent": 0}
    details = []
    for op in history.ops:
        if op.outcome == "ok" or op.kind not in (*CREATES, "add_tag", "copy_tag"):
            continue
        name = op.args.get("name") or op.args.get("targetName")
        there = any((name in final.reads[n]) if op.kind in ("add_tag", "copy_tag") else (op.marker in indexes[n].markers)
                    for n in readable)
        figures[f"{op.outcome}_{'present' if there else 'absent'}"] += 1
        if there:
            details.append({"marker": op.marker, "kind": op.kind, "outcome": op.outcome, "error": op.error})
    return Check("failed_but_present", INFO,
                 f"{figures['error_present']} failed and {figures['unknown_present']} unknown writes appeared anyway "
                 "(allowed)", figures, details[:DETAILS])


# ---- replicas and membership --------------------------------------------------------------------
def _final_reads(final: FinalState, readable: list[str]) -> Check:
    silent = [n for n in final.nodes if n not in readable]
    return Check("final_reads", FAIL if silent else PASS,
                 f"{len(readable)} of {len(final.nodes)} nodes answered the final reads", {"unread": silent})


def _stayed_up(final: FinalState) -> Check:
    errors = sum(final.log_errors.values())
    return Check("nodes_stayed_up", FAIL if final.crashed else PASS,
                 (f"{len(final.crashed)} nodes exited on their own" if final.crashed else "no node exited on its own")
                 + f"; {errors} error lines in the node logs", {"crashed": final.crashed, "log_errors": final.log_errors})


def _convergence(final: FinalState) -> Check:
    seconds = final.converged_after
    return Check("convergence", FAIL if seconds is None else PASS,
                 "replicas never converged" if seconds is None else
                 f"replicas converged {seconds:.2f} s after the final heal ({final.convergence_method})",
                 {"heal_to_convergence_seconds": seconds, "method": final.convergence_method})


def digests_agree(digests: dict[str, dict[str, str]], replicas: int, nodes: int) -> tuple[bool, list[dict]]:
    """Every partition held by its full count of replicas, all with one root."""
    holders: dict[str, dict[str, str]] = defaultdict(dict)
    for node, parts in digests.items():
        for pid, root in parts.items():
            holders[pid][node] = root
    want = min(replicas, nodes)
    bad = [{"partition": pid, "roots": roots} for pid, roots in sorted(holders.items())
           if len(set(roots.values())) != 1 or len(roots) < want]
    return not bad, bad


def reads_fingerprint(tags: dict[str, list[dict]]) -> str:
    return hashlib.sha256(json.dumps(tags, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _identical(final: FinalState, readable: list[str]) -> Check:
    if final.digests is not None:
        ok, bad = digests_agree(final.digests, final.replicas, len(final.nodes))
        parts = len({p for d in final.digests.values() for p in d})
        return Check("replicas_identical", PASS if ok else FAIL,
                     f"{parts - len(bad)} of {parts} partitions have one digest root on all their replicas",
                     {"partitions": parts, "differing": len(bad), "method": "digests"}, bad[:DETAILS])
    prints = {n: reads_fingerprint(final.reads[n]) for n in readable}
    same = len(set(prints.values())) <= 1
    return Check("replicas_identical", PASS if same else FAIL,
                 "every node's full read is identical" if same else "nodes' full reads differ "
                 "(no /admin/digest: compared whole reads)", {"method": "reads", "distinct": len(set(prints.values()))},
                 [] if same else [prints])


def _membership(final: FinalState) -> Check:
    bad = {n: v for n, v in final.views.items()
           if v is None or any(v.get(m) != "alive" for m in final.nodes)}
    return Check("membership_agreed", FAIL if bad else PASS,
                 "every node sees every node alive" if not bad else f"{len(bad)} nodes disagree",
                 {"disagreeing": sorted(bad)}, [bad] if bad else [])


# ---- claims ---------------------------------------------------------------------------------------
@dataclass
class Hold:
    op: Op
    item: str
    end: float  # the latest time the holder surely still held it


def fault_state(history: History, faults: list[Fault], t: float) -> tuple[set, set]:
    """(cut links, down nodes) in force at time t, from the nemesis events."""
    cut, down = set(), set()
    for i, kind, started, healed in history.windows():
        if started <= t and (healed is None or t < healed):
            f = faults[i]
            cut |= set(f.cut)
            if kind in DOWN_KINDS:
                down |= set(f.nodes)
    return cut, down


def had_majority(history: History, faults: list[Fault], nodes: list[str], op: Op) -> bool:
    """Whether the op's node talked directly to a majority of the nodes throughout the call."""
    n, me = len(nodes), nodes.index(op.node)
    times = [op.invoke] + [e.time for e in history.events if op.invoke < e.time <= op.complete]
    for t in times:
        cut, down = fault_state(history, faults, t)
        if len(reachable(me, n, cut, down - {me})) <= n // 2:
            return False
    return True


def lease_slack(faults: list[Fault]) -> float:
    """Leases are timed by the nodes' clocks, which the clock nemesis skews."""
    return 0.5 + 2 * max((abs(f.offset) for f in faults), default=0.0)


def _holds(history: History, slack: float) -> list[Hold]:
    """What each successful claim surely held, and until when: its lease (less the clock slack), cut
    short by the holder's release or by its next claim, which renews the lease to a new length."""
    ends = defaultdict(list)  # (agent, item) -> times a release or a renewal may have ended a lease
    for op in history.ops:
        if op.kind == "release" and op.maybe_applied:
            ends[(op.client, op.targets[0])].append(op.invoke)
        elif op.kind == "claim" and op.maybe_applied and op.value.get("item_marker"):
            ends[(op.client, op.value["item_marker"])].append(op.invoke)
    holds = []
    for op in history.ops:
        v = op.value
        if op.kind == "claim" and op.outcome == "ok" and v.get("claimed") and v.get("item_marker"):
            end = op.invoke + op.args["leaseSeconds"] - slack
            end = min([end] + [t for t in ends[(op.client, v["item_marker"])] if t > op.complete])
            holds.append(Hold(op, v["item_marker"], end))
    return holds


def _claims(history: History, final: FinalState, faults: list[Fault]) -> Check:
    holds = _holds(history, lease_slack(faults))
    if not holds:
        return Check("claims_exclusive", NA, "no successful claims in the history")
    by_item = defaultdict(list)
    for h in holds:
        by_item[h.item].append(h)
    violations, minority = [], []
    for item, hs in by_item.items():
        for i, h1 in enumerate(hs):
            for h2 in hs[i + 1:]:
                if h1.op.client == h2.op.client:
                    continue
                first, second = (h1, h2) if h1.op.complete <= h2.op.invoke else (h2, h1)
                if not (first.op.complete <= second.op.invoke and second.op.complete <= first.end):
                    continue
                both = all(had_majority(history, faults, final.nodes, h.op) for h in (first, second))
                (violations if both else minority).append(
                    {"item": item, "held": {"agent": first.op.client, "via": first.op.node, "acked": first.op.complete,
                                            "surely_held_until": round(first.end, 3)},
                     "also_claimed": {"agent": second.op.client, "via": second.op.node, "invoked": second.op.invoke,
                                      "acked": second.op.complete}})
    in_minority = sum(not had_majority(history, faults, final.nodes, h.op) for h in holds)
    figures = {"claims": len(holds), "items": len(by_item), "double_claims_with_majority": len(violations),
               "double_claims_involving_minority": len(minority), "claims_granted_without_majority": in_minority}
    doubled = len({v["item"] for v in violations})
    figures["items_double_claimed_with_majority"] = doubled
    return Check("claims_exclusive", FAIL if violations else PASS,
                 f"{doubled} items held by two agents at once while both had a majority "
                 f"({len(violations)} such claims; {len(holds)} claims on {len(by_item)} items)", figures,
                 (violations + minority)[:DETAILS])


# ---- invariants -----------------------------------------------------------------------------------
def tag_problems(tag: str, tasks: list[dict]) -> list[str]:
    """Duplicate ids and dependency cycles in one tag."""
    problems = []
    seen = set()
    graph: dict[str, list[str]] = {}
    for task in tasks:
        tid = str(task["id"])
        if tid in seen:
            problems.append(f"{tag}: duplicate task id {tid}")
        seen.add(tid)
        graph.setdefault(tid, []).extend(str(d) for d in task.get("dependencies") or ())
        sub_ids = set()
        for sub in task.get("subtasks") or ():
            if sub["id"] in sub_ids:
                problems.append(f"{tag}: duplicate subtask id {tid}.{sub['id']}")
            sub_ids.add(sub["id"])
            graph.setdefault(f"{tid}.{sub['id']}", []).extend(
                f"{tid}.{d}" if isinstance(d, int) else str(d) for d in sub.get("dependencies") or ())
    cycle = find_cycle(graph)
    if cycle:
        problems.append(f"{tag}: dependency cycle {' -> '.join(cycle)}")
    return problems


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in the graph (as a path that returns to its start), or None. Iterative DFS."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        stack, path = [(root, iter(graph.get(root, ())))], [root]
        state[root] = 1
        while stack:
            node, edges = stack[-1]
            nxt = next(edges, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif nxt in graph and state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt in graph and nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(graph[nxt])))
                path.append(nxt)
    return None


def _invariants(final: FinalState, readable: list[str]) -> Check:
    problems = [f"{n}: {p}" for n in readable for tag, tasks in sorted(final.reads[n].items())
                for p in tag_problems(tag, tasks)]
    return Check("invariants", FAIL if problems else PASS,
                 f"{len(problems)} duplicate ids or dependency cycles after repair", {"problems": len(problems)},
                 problems[:DETAILS])


# ---- the rest -------------------------------------------------------------------------------------
def _supervised(history: History, final: FinalState, readable: list[str], indexes: dict) -> Check:
    """Every PRD requirement of a supervised parse is a task of the op's tag exactly once on every node:
    never twice (a re-run after a runner died must find what its first run wrote), and present once the
    operation completed. Operations that may have run without an acknowledgement are held to the
    "never twice" half; those still running when the final phase gave up waiting are reported. Only
    parse_prd is verifiable (its requirements carry the marker); other supervised tools fail, unverified."""
    ops = [op for op in history.ops if op.tool in SUPERVISED_TOOLS and op.maybe_applied]
    if not ops:
        return Check("supervised_operations_exactly_once", NA, "no supervised operations in the history")
    polled = final.operations or {}
    figures = dict.fromkeys(("acknowledged", "completed", "failed", "running", "unacknowledged",
                             "duplicated", "missing"), 0)
    figures["unverifiable"] = sum(op.tool != "parse_prd" for op in ops)
    details = []
    for op in ops:
        if op.tool != "parse_prd":
            continue
        op_id = op.value.get("operationId") if op.outcome == "ok" else None
        status = (polled.get(op_id) or {}).get("status") if op_id else None
        if op_id is None:
            figures["unacknowledged"] += 1
        else:
            figures["acknowledged"] += 1
            figures[status if status in FINISHED else "running"] += 1
        counts = {n: _titles_in(indexes[n], op.marker, op.args.get("tag")) for n in readable}
        twice = {n: [t for t, k in c.items() if k > 1] for n, c in counts.items()}
        absent = {n: [t for t in prd_titles(op.marker) if not c.get(t)] for n, c in counts.items()}
        example = {"marker": op.marker, "operationId": op_id, "tag": op.args.get("tag"), "status": status}
        if any(twice.values()):
            figures["duplicated"] += 1
            details.append({**example, "duplicated": {n: t for n, t in twice.items() if t}})
        if status == "completed" and any(absent.values()):
            figures["missing"] += 1
            details.append({**example, "missing": {n: t for n, t in absent.items() if t}})
        elif op_id and status not in FINISHED:
            details.append({**example, "still_running": True, "error": (polled.get(op_id) or {}).get("error")})
    bad = figures["duplicated"] + figures["missing"] + figures["unverifiable"]
    return Check("supervised_operations_exactly_once", FAIL if bad else PASS,
                 f"{figures['duplicated']} operations wrote a requirement twice and {figures['missing']} completed "
                 f"ones lack one ({figures['acknowledged']} acknowledged: {figures['completed']} completed, "
                 f"{figures['failed']} failed, {figures['running']} still running; "
                 f"{figures['unacknowledged']} unacknowledged; {figures['unverifiable']} of tools this checker "
                 "cannot verify)", figures, details[:DETAILS])


def _titles_in(found: Index, mark: str, tag: str | None) -> dict[str, int]:
    """How many tasks of `tag` carry each title marked `mark`."""
    counts: dict[str, int] = defaultdict(int)
    for item in found.markers.get(mark, ()):
        if item.tag == tag and item.parent is None:
            counts[(item.task.get("title") or "").strip()] += 1
    return counts


def _nemesis_applied(history: History, faults: list[Fault]) -> Check:
    if not faults:
        return Check("nemesis_applied", NA, "no faults scheduled")
    failed = [{"fault": e.fault, "kind": e.kind, "action": e.action, "error": e.error}
              for e in history.events if not e.ok]
    started = {e.fault for e in history.events if e.action == "start" and e.ok}
    healed = {e.fault for e in history.events if e.action == "heal" and e.ok}
    figures = {"scheduled": len(faults), "applied": len(started), "healed": len(healed & started)}
    ok = not failed and len(started) == len(faults) and started <= healed
    return Check("nemesis_applied", PASS if ok else FAIL,
                 f"{len(started)} of {len(faults)} faults applied, {len(healed & started)} healed on schedule",
                 figures, failed[:DETAILS])


def _status_order(history: History, final: FinalState, readable: list[str], indexes: dict) -> Check:
    """Tasks whose final status is not the one written last in real time (with no write overlapping
    it): reported, since only causally later writes must win an LWW register. Tasks whose subtasks
    were added to or had their status set after that write are left out: Task Master moves a
    parent's status along with its subtasks'."""
    if not readable:
        return Check("status_last_writer", NA, "no node could be read")
    found = indexes[readable[0]]
    parent = {m: marker_in(i.parent.get("title")) for m, items in found.markers.items() for i in items if i.parent}
    writes, touched = defaultdict(list), defaultdict(list)
    for op in history.ops:
        if op.kind == "set_status" and op.maybe_applied:
            if "." in op.args["id"]:
                touched[parent.get(op.targets[0])].append(op.invoke)
            else:
                writes[op.targets[0]].append(op)
        elif op.kind == "add_subtask" and op.maybe_applied:
            touched[op.targets[0]].append(op.invoke)
    inversions, checked = [], 0
    for target, ops in writes.items():
        last = max(ops, key=lambda o: o.complete)
        if last.outcome != "ok" or any(o is not last and o.complete >= last.invoke for o in ops) \
                or any(t >= last.invoke for t in touched[target]):
            continue
        item = _at(found, target, last.args["id"])
        if item is None or len(found.refs[(MASTER, last.args["id"])]) > 1:
            continue  # moved, or sharing its id with another task: the write cannot be attributed
        checked += 1
        if item.task.get("status") != last.args["status"]:
            inversions.append({"task": target, "last_write": last.args["status"], "final": item.task.get("status"),
                               "at": last.complete})
    return Check("status_last_writer", INFO,
                 f"{len(inversions)} of {checked} tasks do not show their real-time last status write",
                 {"checked": checked, "inversions": len(inversions)}, inversions[:DETAILS])
