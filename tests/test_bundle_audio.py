"""A registered model decodes requests as ingest decoded its training clips (tracking/bundle_audio.py):
a dataset whose channel 0 is the far microphone (``--channel-roles far,near``) is scored by the
pyfunc on the near channel, as the scoring run was, not on channel 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asd_core.config import AudioConfig, IngestConfig, Workspace
from asd_core.tracking.bundle_audio import AUDIO_FILE, ChannelLayoutError, layout_of, request_audio_config
from tests.test_channel_scoring import ENCODER, SR, make_tree


def _row(channels, selection, roles=None):
    return {"channels": channels, "channel_selection": selection, "channel_roles": roles}


@pytest.mark.parametrize("rows, layout", [
    ([_row(1, "mono")], None),
    ([_row(2, "0", ["near", "far"]), _row(1, "mono")], None),  # the defaults need no file
    ([_row(2, "1", ["near", "far"])], {"channel_roles": ["far", "near"]}),
    ([_row(2, "1")], {"channel": 1}),
    ([_row(4, "2")], {"channel": 2}),
    ([_row(2, "mean")], {"channel": "mean"}),
    ([_row(4, "0", ["ch0", "ch1", "ch2", "ch3"])], {"channels": "all"}),
])
def test_layout_of_training_clips(rows, layout, tmp_path):
    assert layout_of(rows) == layout
    if layout is not None:
        from asd_core.tracking.bundle_audio import write_layout

        write_layout(tmp_path, layout)
        cfg = request_audio_config(tmp_path, 16000)
        assert cfg == AudioConfig(sample_rate=16000, **layout)


def test_mixed_channel_options_are_refused():
    with pytest.raises(ChannelLayoutError, match="different channel options"):
        layout_of([_row(2, "0", ["near", "far"]), _row(2, "1", ["near", "far"])])


def _swap_channels(tree: Path) -> None:
    for path in tree.rglob("*.wav"):
        data, sr = sf.read(path, dtype="int16")
        sf.write(path, data[:, ::-1], sr, subtype="PCM_16")


@pytest.mark.slow
def test_pyfunc_scores_the_channel_the_run_was_fit_on(tmp_path, prefect_harness):
    """Ingested with roles far,near: the bundle records them, and the pyfunc's scores of the test WAVs
    equal the run's scores in DuckDB (which used the near channel, file channel 1); decoding channel 0
    as before would score the far microphone."""
    import pandas as pd
    from mlflow.pyfunc import PythonModelContext

    from asd_core.ingest import ingest_roots
    from asd_core.storage.catalog import connect, query_rows
    from asd_core.tracking.pyfunc_model import BUNDLE, AsdScoringModel
    from asd_core.tracking.registry import bundle_run
    from flows.embed import embed_flow
    from flows.score import score_flow

    tree = make_tree(tmp_path / "tree")
    _swap_channels(tree)
    ws = Workspace(tmp_path / "ws")
    ingest_roots(ws, [tree], "d26", IngestConfig(audio=AudioConfig(channel_roles=("far", "near"))))
    embed_flow(workspace=str(ws.root), encoder=ENCODER)
    run = score_flow(workspace=str(ws.root), encoder=ENCODER, normalization="knn", k=2)
    bundle = tmp_path / "model" / BUNDLE
    bundle_run(ws, run["run_id"], bundle)
    assert (bundle / AUDIO_FILE).exists()
    assert request_audio_config(bundle, SR).channel_roles == ("far", "near")

    with connect(ws, read_only=True) as con:
        rows = query_rows(con, """SELECT c.root || '/' || c.relative_path AS path, s.score FROM scores s JOIN clips c USING (clip_id)
                                  WHERE s.run_id = ? ORDER BY path""", [run["run_id"]])
    model = AsdScoringModel()
    model.load_context(PythonModelContext(artifacts={BUNDLE: str(bundle)}, model_config=None))
    out = model.predict(None, pd.DataFrame({"path": [r["path"] for r in rows], "machine_type": "fan", "section": "00"}))
    np.testing.assert_allclose(out["score"].to_numpy(), [r["score"] for r in rows], rtol=1e-9, atol=1e-9)

    (bundle / AUDIO_FILE).unlink()  # a bundle without the record decodes channel 0: the far microphone
    model.load_context(PythonModelContext(artifacts={BUNDLE: str(bundle)}, model_config=None))
    far = model.predict(None, pd.DataFrame({"path": [r["path"] for r in rows], "machine_type": "fan", "section": "00"}))
    assert not np.allclose(far["score"].to_numpy(), [r["score"] for r in rows], rtol=1e-3)
