"""What keeping both microphones costs (issue 20): on two-channel demo data, ingest with both
channels (the default) and with the near channel only (``--channel 0``), side by side in one run:
stored Parquet bytes and ingest time; then embedding time of the near and of the far channel.

    .venv/bin/python benchmarks/two_channel_cost.py [--size dcase] [--encoder logmel-stats]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.parquet")) if folder.exists() else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="dcase", choices=["small", "medium", "dcase"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--encoder", default="logmel-stats")
    args = ap.parse_args()
    from flows import prefect_server

    prefect_server.install()  # one temporary Prefect server for every flow of this process, stopped at exit

    from asd_core.demo import make_demo_data
    from asd_core.textable import format_table
    from flows.embed import embed_flow
    from flows.ingest import ingest_flow

    rows = []
    with tempfile.TemporaryDirectory(prefix="asd-2ch-cost-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        counts = make_demo_data(root / "data", seed=args.seed, size=args.size, channels=2)
        print(f"{counts['clips']} two-channel clips generated in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        wav_bytes = sum(p.stat().st_size for p in (root / "data" / "dev_data").rglob("*.wav"))
        for label, channel in (("near only (--channel 0)", "0"), ("near + far (default)", "auto")):
            ws = root / f"ws-{channel}"
            t0 = time.perf_counter()
            ingest_flow(roots=[str(root / "data")], workspace=str(ws), dataset_name="demo", channel=channel)
            ingest_s = time.perf_counter() - t0
            stored = _bytes(ws / "parquet" / "audio") + _bytes(ws / "parquet" / "audio_channels")
            row = {"ingest": label, "ingest s": f"{ingest_s:.0f}", "audio Parquet MB": f"{stored / 1e6:.0f}",
                   "of the WAVs": f"{stored / wav_bytes:.2f}x"}
            t0 = time.perf_counter()
            embed_flow(workspace=str(ws), encoder=args.encoder)
            row[f"embed near s ({args.encoder})"] = f"{time.perf_counter() - t0:.0f}"
            far_col = f"embed far s ({args.encoder})"
            row[far_col] = "-"  # every row carries every column: the table's header comes from the rows' keys
            if channel == "auto":
                t0 = time.perf_counter()
                embed_flow(workspace=str(ws), encoder=args.encoder, channel="far")
                row[far_col] = f"{time.perf_counter() - t0:.0f}"
            rows.append(row)
    print(f"two-channel {args.size} demo data ({counts['clips']} clips, WAVs {wav_bytes / 1e6:.0f} MB), seed {args.seed}\n")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
