"""Wall time of a flow command with nothing to do, side by side in one run (issue 16's goal: under 3 s):
answered from its up-to-date record (asd_core/pipeline/uptodate.py: no torch, no Prefect, no flow
run; the default), and with that record removed so the flow runs and finds nothing to do, once
with a temporary Prefect server and once with a resident one (`asd server start`). Each run is a
fresh `asd` process with PREFECT_API_URL unset; median of --repeat runs per command and mode.

    .venv/bin/python benchmarks/flow_startup.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ASD = [sys.executable, "-m", "flows.cli"]


def _asd(*argv, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_UI_URL")}
    p = subprocess.run([*ASD, *map(str, argv)], capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        sys.exit(f"error: asd {' '.join(map(str, argv))} failed (exit {p.returncode}): {p.stderr.strip()[-500:]}")
    return p


def _time(argv: list, repeat: int, ws: Path, record: bool = True) -> list[float]:
    """Wall times of ``asd argv``; ``record=False`` deletes the commands' up-to-date records first."""
    times = []
    for _ in range(repeat):
        if not record:
            for f in (ws / "cache" / "stages").glob("cli-*.json"):
                f.unlink()
        t0 = time.perf_counter()
        _asd(*argv)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="asd-flow-startup-") as tmp:
        tmp = Path(tmp)
        os.environ["PREFECT_HOME"] = str(tmp / "prefect-home")  # the temporary servers' home: a fresh one, like CI
        data, ws = tmp / "demo", tmp / "ws"
        t0 = time.perf_counter()
        _asd("make-demo-data", data, "--size", "small")
        _asd("ingest", data, "--workspace", ws)
        _asd("embed", "--encoder", "stft-mean", "--workspace", ws)
        _asd("score", "--encoder", "stft-mean", "--normalization", "knn", "--workspace", ws)
        _asd("register", "--workspace", ws)
        _asd("promote", "--workspace", ws)
        incoming = tmp / "INCOMING"
        for wav in sorted((data / "dev_data").rglob("test/*.wav"))[:: 10]:  # 30 recordings, 3 machine types
            machine_type, section = wav.parents[1].name, wav.name.split("_")[1]
            dest = incoming / machine_type / f"section_{section}" / wav.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(wav.read_bytes())
        _asd("monitor", incoming, "--workspace", ws)
        print(f"workspace: small demo data (270 clips) ingested, embedded with stft-mean, scored (knn), registered as "
              f"champion, {len(list(incoming.rglob('*.wav')))} incoming recordings monitored once, in "
              f"{time.perf_counter() - t0:.0f} s (not timed below)")
        commands = {"asd embed (up to date)": ["embed", "--encoder", "stft-mean", "--workspace", ws],
                    "asd ingest (unchanged)": ["ingest", data, "--workspace", ws],
                    "asd monitor (seen)": ["monitor", incoming, "--workspace", ws]}
        for argv in commands.values():
            _asd(*argv)  # warm the page cache and .pyc files for both modes alike
        recorded = {name: _time(argv, args.repeat, ws) for name, argv in commands.items()}
        temporary = {name: _time(argv, args.repeat, ws, record=False) for name, argv in commands.items()}
        t0 = time.perf_counter()
        _asd("server", "start", "--workspace", ws, "--port", _free_port())
        started = time.perf_counter() - t0
        try:
            resident = {name: _time(argv, args.repeat, ws, record=False) for name, argv in commands.items()}
        finally:
            _asd("server", "stop", "--workspace", ws, check=False)
    print(f"asd server start took {started:.1f} s (once)\n")
    print(f"{'command (no-op)':<24} {'up to date s':>13} {'flow, temporary s':>18} {'flow, resident s':>17} {'goal':>6}"
          f"  runs (up to date | temporary | resident)")
    for name in commands:
        u, t, r = (statistics.median(x[name]) for x in (recorded, temporary, resident))
        runs = " | ".join(" ".join(f"{v:.1f}" for v in x[name]) for x in (recorded, temporary, resident))
        print(f"{name:<24} {u:>13.2f} {t:>18.2f} {r:>17.2f} {'met' if u < 3 else 'missed':>6}  {runs}")
    print(f"\nMeasured: each run a fresh `asd` process (python -m flows.cli) with PREFECT_API_URL unset, wall time, "
          f"median of {args.repeat}. 'up to date': answered from the command's up-to-date record (no flow run); "
          f"'flow': the record deleted before each run, so the flow runs and finds nothing to do, with a temporary "
          f"Prefect server, then with `asd server start` running for the workspace. Goal: under 3 s. "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end (other processes share the machine).")


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    main()
