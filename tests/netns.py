"""Test hosts in network namespaces on one bridge; partitions by blackhole routes.

Only for tests run as root with `ip` available (`NetnsHosts.available()` says). The addresses are on
a subnet that exists only between these namespaces, made and removed by the test itself. The bridge
holds the subnet's .254 address (`outside`), so the test process, in the root namespace, reaches
every host; partitions cut only host-to-host links.
"""

from __future__ import annotations

import os
import shutil
import subprocess

SUBNET = "10.77.{run}.{host}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class NetnsHosts:
    def __init__(self, count: int):
        self.count = count
        self.tag = f"tm{os.getpid() % 100000}"
        self.run = os.getpid() % 250 + 1
        self.bridge = f"{self.tag}br"
        self.blocked: set[tuple[int, int]] = set()

    @staticmethod
    def available() -> bool:
        return os.geteuid() == 0 and shutil.which("ip") is not None and \
            _ip("netns", "list", check=False).returncode == 0

    def ns(self, i: int) -> str:
        return f"{self.tag}h{i}"

    def addr(self, i: int) -> str:
        return SUBNET.format(run=self.run, host=i + 1)

    @property
    def outside(self) -> str:
        """The bridge's address: where the root namespace's packets to the hosts come from."""
        return SUBNET.format(run=self.run, host=254)

    def __enter__(self) -> NetnsHosts:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.outside}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(self.count):
                ns, outer, inner = self.ns(i), f"{self.tag}v{i}", f"{self.tag}p{i}"
                _ip("netns", "add", ns)
                _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
                _ip("link", "set", inner, "netns", ns)
                _ip("link", "set", outer, "master", self.bridge)
                _ip("link", "set", outer, "up")
                _ip("-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", inner)
                _ip("-n", ns, "link", "set", inner, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:  # `with` calls __exit__ only after __enter__ succeeded
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for i in range(self.count):
            _ip("netns", "del", self.ns(i), check=False)
            _ip("link", "del", f"{self.tag}v{i}", check=False)
        _ip("link", "del", self.bridge, check=False)

    def wrap(self, i: int, command: list[str]) -> list[str]:
        """`command` run inside host i."""
        return ["ip", "netns", "exec", self.ns(i), *command]

    def block(self, a: int, b: int) -> None:
        """Drop everything from a to b and from b to a."""
        for src, dst in ((a, b), (b, a)):
            if (src, dst) not in self.blocked:
                _ip("-n", self.ns(src), "route", "add", "blackhole", f"{self.addr(dst)}/32")
                self.blocked.add((src, dst))

    def partition(self, *groups: list[int]) -> None:
        """Cut every link between different groups."""
        for gi, group in enumerate(groups):
            for other in groups[gi + 1:]:
                for a in group:
                    for b in other:
                        self.block(a, b)

    def heal(self) -> None:
        for src, dst in sorted(self.blocked):
            _ip("-n", self.ns(src), "route", "del", "blackhole", f"{self.addr(dst)}/32", check=False)
        self.blocked.clear()
