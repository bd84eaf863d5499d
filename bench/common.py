"""What every benchmark records: the machine, the load on it, and where results and plots go.

The machine the figures in docs/benchmarks.md came from has 2 cores that other work shares,
so each script records the load average before and after its run, in its table and its JSON.
"""

from __future__ import annotations

import json
import os
import platform
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
DOCS = BENCH.parent / "docs"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def machine() -> dict[str, Any]:
    """Cores, CPU model, RAM, Python and OS, and the load average now ("load_before")."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gib": _ram_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_before": load_average(),
    }


def finish(info: dict[str, Any]) -> dict[str, Any]:
    """Adds the load average at the end ("load_after") to a `machine()` record."""
    info["load_after"] = load_average()
    return info


def describe(info: dict[str, Any]) -> str:
    """One line: cores, CPU, RAM and the 1/5/15-minute load averages before and after."""
    line = f"{info['cpus']} cores ({info['cpu_model']}), {info['ram_gib']} GiB RAM"
    before = "/".join(f"{v:.2f}" for v in info["load_before"])
    line += f"; load average before {before}"
    if "load_after" in info:
        line += ", after " + "/".join(f"{v:.2f}" for v in info["load_after"])
    return line


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(fig: Any, path: Path, title: str, info: dict[str, Any]) -> None:
    """Title the figure with the machine's cores and load average, write the PNG, close it."""
    load = f"{info['load_before'][0]:.1f} → {info['load_after'][0]:.1f}"
    fig.suptitle(f"{title}, {info['cpus']} cores, load average {load}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    with open("/proc/self/statm") as statm:
        return round(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def anon_mb() -> float:
    """The anonymous part of this process's resident memory (RssAnon), in MB: what the
    kernel cannot drop, unlike pages of mapped files that RSS also counts."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0
