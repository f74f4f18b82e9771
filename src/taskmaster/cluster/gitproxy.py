"""The autopilot's git steps, run on a node that sees the project's checkout.

The members of a cluster may be on different machines, and the autopilot's calls run on the
project's coordinator, which may not have the directory at all. A step runs where `projectRoot` is a
git work tree: first on the node that ran the workflow's last step (so a workflow keeps to one
checkout), then here, then on each other reachable member in turn (RPC "autopilot.git"); a member
that does not see it says so, and the first that does runs the step. When none does, the error names
every member asked.

A step is one whole function of tasks/gitwork.py, never a command line: a peer can ask for nothing
else. The step's own failure (a dirty tree, nothing to commit) comes back as that node's TaskError.
"""

from __future__ import annotations

from typing import Any

from taskmaster.cluster.rpc import Indeterminate, RemoteError, Unreachable
from taskmaster.tasks import gitwork
from taskmaster.tasks.errors import TaskError

METHOD = "autopilot.git"
STEPS = {"branch": gitwork.prepare_branch, "commit": gitwork.commit, "status": gitwork.tree_status}
RPC_TIMEOUT = gitwork.GIT_TIMEOUT * 3 + 5  # a step runs a few git commands, each bounded by GIT_TIMEOUT


class GitProxy:
    def __init__(self, name: str, replicator=None):
        """`replicator` gives the members, their addresses and the RPC (None: this node alone)."""
        self.name = name
        self.rep = replicator
        if replicator is not None:
            replicator.rpc.register(METHOD, self._on_step)

    async def run(self, root: str, step: str, args: dict, prefer: str | None = None) -> tuple[str, Any]:
        """(the node that ran it, the step's result) for git step `step` in the checkout `root`."""
        asked: list[str] = []
        unreachable: list[str] = []
        for node in self._order(prefer):
            if node == self.name:
                asked.append(node)
                if await gitwork.sees(root):
                    return node, await STEPS[step](root, **args)
                continue
            if not self.rep.reachable(node):
                unreachable.append(node)
                continue
            try:
                answer = await self.rep.rpc.call(node, self.rep.addrs[node], METHOD,
                                                 {"root": root, "step": step, "args": args}, RPC_TIMEOUT)
            except Unreachable:
                unreachable.append(node)
                continue
            except Indeterminate as e:  # it may have run: trying elsewhere could run it twice
                raise TaskError(f"{node} did not answer the git step '{step}' for {root}; it may or may not "
                                f"have run there ({e})", "GIT_UNKNOWN") from None
            except RemoteError as e:
                raise TaskError(f"{node} failed the git step '{step}' for {root}: {e}", "GIT_FAILED") from None
            asked.append(node)
            if not isinstance(answer, dict) or not answer.get("sees"):
                continue
            if answer.get("error") is not None:
                raise gitwork.GitError(f"{answer['error']} (on {node})", answer.get("code") or "GIT_FAILED")
            return node, answer.get("value")
        others = f"; could not reach {', '.join(unreachable)}" if unreachable else ""
        raise TaskError(f"No node in the cluster can see projectRoot {root} as a git repository "
                        f"(asked {', '.join(asked)}{others})", "NOT_GIT_REPO")

    def _order(self, prefer: str | None) -> list[str]:
        members = self.rep.ring.members if self.rep is not None else ()
        first = [prefer] if prefer in members else []
        return list(dict.fromkeys([*first, self.name, *sorted(members)]))

    async def _on_step(self, peer: str, payload: Any) -> dict:
        if not isinstance(payload, dict) or payload.get("step") not in STEPS or not isinstance(payload.get("root"), str) \
                or not isinstance(payload.get("args"), dict):
            raise ValueError("autopilot.git needs {root, step, args} with a known step")
        root = payload["root"]
        if not await gitwork.sees(root):
            return {"sees": False}
        try:
            return {"sees": True, "value": await STEPS[payload["step"]](root, **payload["args"])}
        except TaskError as e:
            return {"sees": True, "error": e.message, "code": e.code}

