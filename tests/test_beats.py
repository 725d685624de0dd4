"""BEATs: official checkpoint layout round trip (tiny and base configs), key mapping, pooling, errors."""

import numpy as np
import pytest
import torch

from asd_core.encoders import get_encoder
from asd_core.models.beats import BEATs, BEATsConfig, fbank_features
from asd_core.models.beats_checkpoint import BEATsCheckpointError, load_beats, save_beats

TINY = dict(encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=128, encoder_attention_heads=4,
            embed_dim=32, conv_pos=16, conv_pos_groups=4, num_buckets=32, max_distance=64)


def _random_model(seed=0, **cfg):
    torch.manual_seed(seed)
    model = BEATs(BEATsConfig(**cfg)).eval()
    with torch.no_grad():  # non-trivial values everywhere (gates, norms, biases)
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model


def _wave(seconds=2.0, batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, int(seconds * 16000), generator=g)


def test_tiny_round_trip_and_shapes(tmp_path):
    model = _random_model(**TINY)
    path = tmp_path / "tiny.pt"
    save_beats(model, path)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"cfg", "model"} and raw["cfg"]["encoder_layers"] == 2
    assert "encoder.pos_conv.0.weight_g" in raw["model"] and "encoder.pos_conv.0.weight_v" in raw["model"]
    assert "encoder.layers.1.self_attn.relative_attention_bias.weight" in raw["model"]
    loaded, meta = load_beats(path)
    x = _wave()
    with torch.inference_mode():
        a, b = model(x), loaded(x)
    frames = fbank_features(x).shape[1]
    assert a.shape == (2, (frames // 16) * 8, 64)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert meta["label_dict"] is None


def test_newer_torch_weight_norm_keys_are_mapped(tmp_path):
    model = _random_model(**TINY)
    state = model.state_dict()
    renamed = {k.replace("weight_g", "parametrizations.weight.original0").replace("weight_v", "parametrizations.weight.original1"): v
               for k, v in state.items()}
    torch.save({"cfg": model.cfg.to_dict(), "model": renamed}, tmp_path / "new.pt")
    loaded, _ = load_beats(tmp_path / "new.pt")
    x = _wave(1.0, 1)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_positional_conv_equals_torch_weight_norm():
    """Our g/v arithmetic equals torch's own weight_norm(dim=2) on an even-kernel grouped conv."""
    from torch.nn.utils.parametrizations import weight_norm

    model = _random_model(**TINY)
    ours = model.encoder.pos_conv[0]
    conv = weight_norm(torch.nn.Conv1d(64, 64, 16, padding=8, groups=4), name="weight", dim=2)
    with torch.no_grad():
        conv.parametrizations.weight.original0.copy_(ours.weight_g)
        conv.parametrizations.weight.original1.copy_(ours.weight_v)
        conv.bias.copy_(ours.bias)
    x = torch.randn(2, 64, 40)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), torch.nn.functional.gelu(conv(x)[..., :-1]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # 25 s on two idle cores (an 85 M-parameter model, saved, loaded and run on 10 s)
def test_base_config_round_trip_ten_seconds(tmp_path):
    model = _random_model(seed=3)  # the real base configuration: 12 layers, width 768
    assert sum(p.numel() for p in model.parameters()) > 85e6
    path = tmp_path / "base.pt"
    save_beats(model, path, label_dict={"a": 0})
    loaded, meta = load_beats(path)
    x = _wave(10.0, 1)
    with torch.inference_mode():
        a, b = model(x), loaded(x)
    assert a.shape == (1, 496, 768)  # 62 x 8 tokens for 10 s
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert meta["label_dict"] == {"a": 0}
    enc = get_encoder("beats", checkpoint=str(path), pooling="time-mean")
    emb = enc.embed([x[0].numpy()])
    assert emb.shape == (1, 6144) and emb.dtype == np.float32
    np.testing.assert_allclose(emb[0], a[0].view(62, 8, 768).mean(0).reshape(-1).numpy(), rtol=1e-5, atol=1e-6)


def test_fine_tuned_classifier(tmp_path):
    model = _random_model(finetuned_model=True, predictor_class=5, **TINY)
    save_beats(model, tmp_path / "ft.pt", label_dict={i: f"c{i}" for i in range(5)})
    loaded, meta = load_beats(tmp_path / "ft.pt")
    probs = loaded.classify(_wave(1.0, 3))
    assert probs.shape == (3, 5) and ((probs > 0) & (probs < 1)).all()
    assert meta["label_dict"][4] == "c4"


@pytest.mark.parametrize("pooling,layer,mode,dim", [("mean", None, "full", 64), ("time-mean", 1, "pad", 512),
                                                    ("mean", 2, "chunk", 64), ("mean", None, "crop", 64)])
def test_encoder_options(tmp_path, pooling, layer, mode, dim):
    save_beats(_random_model(**TINY), tmp_path / "t.pt")
    enc = get_encoder("beats", checkpoint=str(tmp_path / "t.pt"), pooling=pooling, layer=layer,
                      clip_seconds=1.0, clip_mode=mode, device="cpu")
    waves = [_wave(2.5, 1, seed=s)[0].numpy() for s in range(2)]
    out = enc.embed(waves)
    assert out.shape == (2, dim) and np.isfinite(out).all()
    np.testing.assert_array_equal(out, enc.embed(waves))  # deterministic
    assert enc.dim == dim
    default = get_encoder("beats", checkpoint=str(tmp_path / "t.pt"), clip_seconds=1.0, clip_mode="full")
    assert (enc.version == default.version) == ((pooling, layer, mode) == ("mean", None, "full"))


def test_not_a_checkpoint_is_rejected_clearly(tmp_path):
    junk = tmp_path / "notes.pt"
    junk.write_text("hello")
    with pytest.raises(BEATsCheckpointError, match=r"notes.pt: not a BEATs checkpoint \(torch.load failed"):
        load_beats(junk)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(BEATsCheckpointError, match=r"other.pt: not a BEATs checkpoint \(expected a dict with 'cfg' and 'model'"):
        load_beats(tmp_path / "other.pt")
    model = _random_model(**TINY)
    torch.save({"cfg": {**model.cfg.to_dict(), "encoder_layers": 3}, "model": model.state_dict()}, tmp_path / "bad.pt")
    with pytest.raises(BEATsCheckpointError, match="weights do not match"):
        load_beats(tmp_path / "bad.pt")
    with pytest.raises(BEATsCheckpointError, match="not found"):
        load_beats(tmp_path / "missing.pt")
