"""Whether ``asd ingest``, ``asd embed`` or ``asd monitor`` has anything to do, decided before torch,
Prefect or MLflow load.

A finished command stores its result under a key of everything its output depends on: the code
its flow runs (code_graph.py), every argument that changes the output, the content of the files
those arguments name (raw dataset roots by path, size and mtime, as the pipeline keys them), and
the ingested clips it reads (by content). With the result go the states of the files it wrote.
A later command whose key has a result, and whose files are still exactly as that command left
them, prints the result as a no-op and starts no flow: it answers in about a second instead of
the 5-15 s that importing torch and Prefect and running a flow cost (issue 16, part 5). Anything
else, including any doubt (an unreadable file, a record of another shape), runs the flow, which
decides clip by clip as always.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from asd_core.config import Workspace
from asd_core.encoders.spec import PATH_OPTIONS, EncoderSpec
from asd_core.hashing import file_sha256, new_batch_id
from asd_core.pipeline.code_graph import build_graph
from asd_core.pipeline.fingerprint import clips_fingerprint, mixtures_fingerprint, stage_key, tree_fingerprint
from asd_core.storage.paths import embeddings_dir
from asd_core.storage.stage_results import file_states, read_stage_result, write_stage_result

# Artifacts ``asd ingest`` / ``asd monitor`` write (Parquet); the DuckDB catalogue is published from them.
INGEST_ARTIFACTS = ("clips", "audio", "audio_channels", "quarantine")
MONITOR_ARTIFACTS = ("detections", "monitor_quarantine")


@dataclass(frozen=True)
class CommandCache:
    """One command's key and how to read the states of the files its result names."""

    ws: Workspace
    key: str
    outputs: Callable[[dict], dict]
    reusable: Callable[[dict], bool] = lambda result: True  # results a re-run may repeat without the flow
    summary: Callable[[dict], dict] = lambda result: result  # what of a result is stored (JSON)

    def lookup(self) -> dict | None:
        """The stored result, when its files are as the command that stored it left them."""
        result = read_stage_result(self.ws, self.key, self.outputs)
        return result if result is not None and self.reusable(result) else None

    def store(self, result: dict) -> None:
        kept = self.summary(result)
        write_stage_result(self.ws, self.key, kept, self.outputs(kept))


def code_version(entry: str) -> str:
    """The version of the code a flow module runs: the source of every project module it imports."""
    return _graph().code_version(entry)


@cache
def _graph():
    """The import graph, read once per process: the key is worked out before and after a flow run,
    and the code the process runs is the code it imported (an edit during the run is not in it)."""
    return build_graph()


def path_content(path: str | Path) -> str:
    """Content hash of a model file or folder (every file in it, by relative path)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path, 16)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + file_sha256(f).encode())
    return h.hexdigest()[:16]


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def _published_outputs(ws: Workspace, artifacts: tuple[str, ...]) -> Callable[[dict], dict]:
    """Outputs of a command that writes Parquet artifacts and publishes them to DuckDB: every file
    under the artifacts' folders, and the catalogue present (gone: the flow publishes it again)."""
    def outputs(result: dict) -> dict:
        if not ws.duckdb_path.is_file():
            raise FileNotFoundError(ws.duckdb_path)
        return file_states(ws.root, [f for a in artifacts for f in _files_under(ws.artifact_dir(a))])

    return outputs


def ingest_cache(ws: Workspace, flow_kwargs: dict) -> CommandCache:
    """``asd ingest`` with these ``ingest_flow`` arguments; its outputs are the ingest artifacts."""
    params = {k: v for k, v in flow_kwargs.items() if k not in ("roots", "workspace", "ground_truth")}
    gt = flow_kwargs.get("ground_truth")
    key = stage_key("cli-ingest", code_version("flows.ingest"), roots=[tree_fingerprint(r) for r in flow_kwargs["roots"]],
                    ground_truth=tree_fingerprint(gt) if gt else None, params=params)

    return CommandCache(ws, key, _published_outputs(ws, INGEST_ARTIFACTS))


def embed_cache(ws: Workspace, spec: EncoderSpec, noisy: bool, channel: str | None) -> CommandCache:
    """``asd embed`` of ``spec``; its outputs are every file of the encoder version it wrote."""
    models = {k: path_content(v) for k, v in sorted(spec.options.items()) if k in PATH_OPTIONS and v}
    inputs = dict(clips=clips_fingerprint(ws), encoder=spec.name, options=spec.key_options(), models=models,
                  noisy=noisy, mixtures=mixtures_fingerprint(ws) if noisy else None)
    if channel is not None:
        inputs["channel"] = str(channel)
    key = stage_key("cli-embed", code_version("flows.embed"), **inputs)

    def outputs(result: dict) -> dict:
        return file_states(ws.root, _files_under(embeddings_dir(ws, result["encoder"], result["encoder_version"])))

    return CommandCache(ws, key, outputs)


def monitor_cache(ws: Workspace, incoming: str | Path, model: str, rescore: bool, manifest: str | None,
                  tracking_uri: str | None) -> CommandCache:
    """``asd monitor INCOMING`` with the workspace's own MLflow store: keyed by the incoming tree (path,
    size, mtime of every file: a new or rewritten recording changes it), the model reference and the
    state of the registry's files (a new version or a moved alias changes them); its outputs are the
    detections and monitor_quarantine batches. A run that scored nothing (a failed flow run, which
    failure automations watch) is never repeated from its record. A manifest (paths anywhere) or
    another tracking server: no record, the flow always runs."""
    if manifest is not None or tracking_uri is not None:
        raise ValueError("no up-to-date record for a manifest or a tracking server")
    registry = sorted(p for p in ws.mlflow_dir.glob("mlflow.db*") if p.is_file())
    if not registry:
        raise FileNotFoundError(f"no MLflow store in {ws.mlflow_dir}")
    key = stage_key("cli-monitor", code_version("flows.monitor"), incoming=tree_fingerprint(incoming), model=model,
                    rescore=rescore, registry=file_states(ws.mlflow_dir, registry))

    return CommandCache(ws, key, _published_outputs(ws, MONITOR_ARTIFACTS), reusable=lambda result: not result.get("nothing_scored"),
                        summary=lambda r: {k: v for k, v in r.items() if k not in ("detections", "quarantine")})


def as_ingest_noop(result: dict) -> dict:
    """A stored ingest report as an unchanged re-run reports it: nothing decoded or removed."""
    groups = [{**g, "decoded": 0, "reused": g.get("clips", 0), "removed": 0, "written": False, "decode_seconds": 0.0,
               "decoded_bytes": 0} for g in result.get("groups", [])]
    return {**result, "decoded": 0, "reused": result["clips"], "removed": 0, "groups": groups}


def as_embed_noop(result: dict) -> dict:
    """A stored embed report as an up-to-date re-run reports it: every clip already done."""
    partitions = [{**p, "embedded": 0, "reused": p["embedded"] + p["reused"], "seconds": 0.0}
                  for p in result.get("partitions", [])]
    return {**result, "embedded": 0, "reused": result["embedded"] + result["reused"], "partitions": partitions}


def as_monitor_noop(result: dict) -> dict:
    """A stored monitor report as a re-run over the same files reports it: every file already scored
    or already quarantined, under a new batch id (a batch that writes no rows, as the flow's)."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # naive UTC, as monitor/run.py stamps batches
    return {**result, "batch_id": new_batch_id(now), "scored": 0, "anomalies": 0, "quarantined": 0, "notes": 0,
            "already_scored": result["scored"] + result["already_scored"],
            "already_quarantined": result["quarantined"] + result["already_quarantined"],
            "nothing_scored": False, "detections": [], "quarantine": []}
