"""Model registry: register a scoring run as a self-contained pyfunc, promote, list.

A registered version is what a scoring run used: the encoder (weights bundled), the
per-section FAISS indexes with rho and thresholds, and the normalisation config. Its tags
carry the run's official score, data snapshot, git commit, teacher and loss config; every
new version gets alias ``challenger``. ``promote`` moves ``champion`` only when the
challenger's official score is at least the champion's, and records the decision.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

from asd_core.config import Workspace
from asd_core.encoders.spec import PATH_OPTIONS
from asd_core.scoring import index_store
from asd_core.scoring.channels import ChannelSpec
from asd_core.scoring.run import run_params, scoring_config
from asd_core.storage.catalog import connect, query_rows, resolve_run
from asd_core.storage.embeddings import read_encoder_card
from asd_core.storage.paths import embedding_file, index_section_root
from asd_core.tracking.bundle_audio import ChannelLayoutError, layout_of, write_layout
from asd_core.tracking.channel_bundle import PRIMARY, RIDGE_FILE, BundleChannels, section_key
from asd_core.tracking.pyfunc_model import BUNDLE, AsdScoringModel
from asd_core.tracking.store import TrackingConfig, client, git_commit, training_run
from asd_core.tracking.versions import version_row

CHALLENGER, CHAMPION = "challenger", "champion"


def _signature():
    """The pyfunc's columns, so MLflow (and its scoring server) rejects malformed requests: per row
    exactly one of ``path`` / ``audio_b64`` (both optional here; the model checks the pair)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec("string", "path", required=False), ColSpec("string", "audio_b64", required=False),
                     ColSpec("string", "machine_type"), ColSpec("string", "section"),
                     ColSpec("string", "dataset", required=False)])
    outputs = Schema([ColSpec("string", "path", required=False), ColSpec("string", "machine_type"),
                      ColSpec("string", "section"), ColSpec("string", "dataset", required=False),
                      ColSpec("double", "score"), ColSpec("double", "threshold"), ColSpec("long", "decision")])
    return ModelSignature(inputs=inputs, outputs=outputs)


SIGNATURE = _signature()
_PIP = ("torch", "torchaudio", "faiss-cpu", "numpy", "pandas", "soundfile", "pyarrow", "scipy", "mlflow")


class RegistryError(ValueError):
    """A registration or promotion that cannot proceed; the message says why."""


def official_score(con, run_id: str) -> float | None:
    """Harmonic mean of all clean AUC_source, AUC_target and pAUC values of the run (methods.md section 6)."""
    row = con.execute("""
        SELECT hmean(v) FROM (SELECT unnest([auc_source, auc_target, pauc]) AS v FROM section_metrics
                              WHERE run_id = ? AND noise_subset = 'clean')""", [run_id]).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def bundle_run(ws: Workspace, run_id: str, out: Path) -> dict:
    """Copy what the pyfunc needs into ``out``; returns the run row with its official score."""
    with connect(ws, read_only=True) as con:
        run_id = resolve_run(con, run_id)
        run = query_rows(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])[0]
        sections = query_rows(con, "SELECT dataset, machine_type, section, threshold FROM thresholds WHERE run_id = ? ORDER BY ALL",
                              [run_id])
        durations = {(r["dataset"], r["machine_type"], r["section"]): r for r in query_rows(con, """
            SELECT dataset, machine_type, section, median(duration_s) AS median_duration_s, count(*) AS train_clips
            FROM clips WHERE split = 'train' GROUP BY ALL""")}
        run["official_score"] = official_score(con, run_id)
        layouts = query_rows(con, """
            SELECT DISTINCT c.channels, c.channel_selection, c.channel_roles FROM clips c
            JOIN thresholds t USING (dataset, machine_type, section) WHERE t.run_id = ? AND c.split = 'train'""", [run_id])
    try:
        layout = layout_of(layouts)
    except ChannelLayoutError as exc:
        raise RegistryError(f"run {run_id}: {exc}") from None
    cfg = scoring_config(run)
    card = read_encoder_card(ws, run["encoder"], run["encoder_version"])
    if "registry_name" not in card:
        raise RegistryError(f"the {run['encoder']} embeddings predate bundling (encoder.json has no options); run `asd embed` again")
    if card["registry_name"] == "oracle":
        raise RegistryError("the oracle encoder needs the clean and noise parts of each clip: it cannot score WAV files")
    out.mkdir(parents=True, exist_ok=True)
    bundled = {}
    for key, value in (card.get("options") or {}).items():
        if key in PATH_OPTIONS and value:
            src = Path(value)
            if src.is_dir():
                dest = out / "encoder" / key
                dest.mkdir(parents=True, exist_ok=True)
                for name in ("model.pt", "config.json"):
                    shutil.copy2(src / name, dest / name)
            elif src.is_file():
                dest = out / "encoder" / src.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
            else:
                raise RegistryError(f"{src}: the encoder's {key} is gone; cannot bundle run {run_id}")
            bundled[key] = dest.relative_to(out).as_posix()
    (out / "encoder.json").write_text(json.dumps({**card, "bundled_files": bundled}, indent=2))
    write_layout(out, layout)  # which channel of a request is the one the model was fit on
    channels = ChannelSpec.from_params(run_params(run))
    for s in sections:  # an auto run chose K or r per section: each section's own index
        where = (s["dataset"], s["machine_type"], s["section"])
        for i, variant in enumerate(channels.variants()):
            src = _section_index(ws, run, s, variant)
            if src is None:
                raise RegistryError(f"run {run_id} ({cfg.normalization}) has no stored index for {s['dataset']}/"
                                    f"{s['machine_type']}/section_{s['section']}: only none/knn/gwrp(-diff) runs can be "
                                    "registered; re-run `asd score`")
            base = out if i == 0 else out / "channels" / channels.channels[i]
            dest = base / "indexes" / s["dataset"] / s["machine_type"] / f"section_{s['section']}"
            shutil.copytree(src, dest)
            if channels.noise_reference is not None:
                ridge = index_section_root(ws, run["encoder"], run["encoder_version"], *where) / f"{variant}.npz"
                shutil.copy2(ridge, dest / RIDGE_FILE)
    if not channels.default:
        BundleChannels([c or PRIMARY for c in channels.channels], channels.fusion, channels.noise_reference,
                       {section_key(s["dataset"], s["machine_type"], s["section"]): s["threshold"] for s in sections}).write(out)
    # what `asd enroll` checks new clips against (the section's clip duration)
    (out / "sections.json").write_text(json.dumps([
        {**{k: s[k] for k in ("dataset", "machine_type", "section")}, "median_duration_s": (durations.get((s["dataset"], s["machine_type"], s["section"])) or {}).get("median_duration_s"),
         "sample_rate": card["sample_rate"]} for s in sections], indent=2))
    stored = run_params(run)  # an auto run: k / r "auto" and the per-section choices, as in runs.params
    auto = {key: stored[key] for key in ("k", "r", "choices") if stored.get(key) == "auto" or key == "choices" and key in stored}
    (out / "scoring.json").write_text(json.dumps({"run_id": run_id, "normalization": cfg.normalization, **cfg.params(), **auto},
                                                 indent=2))
    return run


def _section_index(ws: Workspace, run: dict, s: dict, variant: str | None) -> Path | None:
    """The stored index of one section of a run: its channel variant's folder, or the primary one
    where the channel is the dataset's primary waveform (run.py ``load_sections``)."""
    for v in dict.fromkeys([variant, None]):
        src = index_store.section_dir(ws, run["encoder"], run["encoder_version"], s["dataset"], s["machine_type"], s["section"],
                                      scoring_config(run, s), v)
        if (src / "manifest.json").exists():
            return src
        if variant is None or "-given-" in variant or embedding_file(
                ws, run["encoder"], run["encoder_version"], s["machine_type"], s["dataset"], variant).exists():
            return None  # the channel has its own embeddings (or is a residual): no primary fallback
    return None


def register_run(ws: Workspace, run_id: str | None, tracking: TrackingConfig = TrackingConfig(), tags: dict | None = None) -> dict:
    """Log the run's pyfunc to MLflow, register it as a new version of ``tracking.model_name``
    and give it alias ``challenger``."""
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / BUNDLE
        run = bundle_run(ws, run_id, bundle)
        card = json.loads((bundle / "encoder.json").read_text())
        params = run_params(run)
        version_tags = {
            "run_id": run["run_id"], "encoder": run["encoder"], "encoder_version": run["encoder_version"],
            "normalization": run["normalization"], "official_score": _fmt(run["official_score"]),
            "data_snapshot": params.get("data_snapshot", "unknown"), "git_commit": git_commit(),
            "teacher": card["params"].get("teacher") or "none", "loss_config": "n/a",
            **{k: str(v) for k, v in (tags or {}).items()},  # the caller's teacher / loss_config win
        }
        out = register_bundle(ws, bundle, tracking, version_tags, run_name=f"register-{run['run_id']}",
                              params={"run_id": run["run_id"], "encoder": run["encoder"],
                                      "normalization": run["normalization"], **params},
                              official=run["official_score"])
    return {**out, "official_score": run["official_score"], "run_id": run["run_id"]}


def register_bundle(ws: Workspace, bundle: Path, tracking: TrackingConfig, version_tags: dict, run_name: str,
                    params: dict, official: float | None = None, kind: str = "registration",
                    artifacts: dict[str, Path] | None = None) -> dict:
    """Log a bundle folder as the pyfunc of one MLflow run, register it as a new version of
    ``tracking.model_name`` with ``version_tags`` and give it alias ``challenger``.

    ``artifacts``: extra files logged beside the model (artifact path -> local file)."""
    import mlflow

    with training_run(ws, tracking, run_name=run_name, tags={"kind": kind}) as log:
        log.log_params(params)
        if official is not None:
            mlflow.log_metric("official_score", official)
        for dest, path in (artifacts or {}).items():
            mlflow.log_artifact(str(path), artifact_path=dest)
        info = mlflow.pyfunc.log_model(name="model", python_model=AsdScoringModel(), artifacts={BUNDLE: str(bundle)},
                                       pip_requirements=_requirements(), signature=SIGNATURE)
        mlflow_run_id = log.run_id
    c = client(ws, tracking)
    mv = mlflow.register_model(info.model_uri, tracking.model_name, tags=version_tags)
    version = str(mv.version)
    _wait_ready(c, tracking.model_name, version)
    c.set_registered_model_alias(tracking.model_name, CHALLENGER, version)
    return {"name": tracking.model_name, "version": version, "model_uri": f"models:/{tracking.model_name}/{version}",
            "mlflow_run_id": mlflow_run_id, "tags": version_tags}


def _wait_ready(c, name: str, version: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while c.get_model_version(name, version).status != "READY" and time.monotonic() < deadline:
        time.sleep(0.2)


def _fmt(x) -> str:
    return "nan" if x is None else repr(float(x))


def _requirements() -> list[str]:
    out = []
    for pkg in _PIP:
        try:
            out.append(f"{pkg}=={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    return out


def aliases(ws: Workspace, tracking: TrackingConfig) -> dict[str, str]:
    """alias -> version (read from the registered model: search results lack aliases on SQL stores)."""
    from mlflow.exceptions import MlflowException

    try:
        return {a: str(v) for a, v in client(ws, tracking).get_registered_model(tracking.model_name).aliases.items()}
    except MlflowException:
        raise RegistryError(f"no registered model {tracking.model_name!r} in {tracking.resolved_uri(ws)}; "
                            "train a student or run `asd register` first") from None


def promote(ws: Workspace, tracking: TrackingConfig = TrackingConfig(), version: str | None = None) -> dict:
    """Move ``champion`` to the challenger (or ``version``) if its official score is >= the champion's."""
    c = client(ws, tracking)
    name = tracking.model_name
    current = aliases(ws, tracking)
    version = str(version or current.get(CHALLENGER) or "")
    if not version:
        raise RegistryError(f"{name} has no {CHALLENGER} alias; pass --version")
    challenger = c.get_model_version(name, version)
    champion_version = current.get(CHAMPION)
    new_score = float(challenger.tags.get("official_score", "nan"))
    old_score = float(c.get_model_version(name, champion_version).tags.get("official_score", "nan")) if champion_version else None
    if new_score != new_score:
        raise RegistryError(f"{name} version {version} has no official score tag; cannot compare")
    if champion_version == version:
        promoted, reason = True, "already champion"
    elif old_score is None or old_score != old_score or new_score >= old_score:
        promoted, reason = True, "no champion yet" if old_score is None else "score >= champion's"
    else:
        promoted, reason = False, "score < champion's"
    if promoted:
        c.set_registered_model_alias(name, CHAMPION, version)
    decision = {"promotion_decision": "promoted" if promoted else "refused", "promotion_reason": reason,
                "promotion_challenger_score": _fmt(new_score), "promotion_champion_score": _fmt(old_score),
                "promotion_champion_version": champion_version or "none",
                "promotion_time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for k, v in decision.items():
        c.set_model_version_tag(name, version, k, v)
    return {"name": name, "version": version, "promoted": promoted, "reason": reason, "challenger_score": new_score,
            "champion_score": old_score, "champion_version": champion_version}


def list_models(ws: Workspace, tracking: TrackingConfig = TrackingConfig()) -> list[dict]:
    c = client(ws, tracking)
    by_version: dict[str, list[str]] = {}
    for alias, v in aliases(ws, tracking).items():
        by_version.setdefault(v, []).append(alias)
    return [version_row(int(mv.version), mv.creation_timestamp, mv.tags, by_version.get(str(mv.version), []))
            for mv in sorted(c.search_model_versions(f"name = '{tracking.model_name}'"), key=lambda m: int(m.version))]
