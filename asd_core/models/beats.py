"""BEATs (Chen et al., 2022) as a plain PyTorch module that loads the official checkpoints.

Written for this project from the architecture description (methods.md section 4): a 16x16
patch convolution over a Kaldi fbank, a linear projection, a convolutional positional
embedding with weight norm, and post-norm transformer layers with deep-norm residual scaling
and a gated relative position bias computed in the first layer and shared by all layers.
Parameter names follow the upstream state dict so official checkpoints load directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from asd_core.config import PIPELINE_SAMPLE_RATE

FBANK_MEAN, FBANK_STD = 15.41663, 6.55582
# BEATs was pre-trained on 16 kHz audio, which the pipeline rate is by design; the BEATs encoder
# declares this rate, so embedding refuses audio stored at any other (embedding/embed.py).
SAMPLE_RATE = PIPELINE_SAMPLE_RATE


@dataclass
class BEATsConfig:
    """Architecture hyper-parameters; built from a checkpoint's ``cfg`` (class defaults = BEATs base)."""

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    deep_norm: bool = True
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    finetuned_model: bool = False
    predictor_class: int = 527

    @classmethod
    def from_dict(cls, cfg: dict) -> "BEATsConfig":
        """Keep the keys this architecture uses; training-only keys (dropouts, ...) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in cfg.items() if k in names})

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def fbank_features(waveforms: torch.Tensor) -> torch.Tensor:
    """[B, samples] at ``SAMPLE_RATE`` in [-1, 1] -> normalised Kaldi fbank [B, frames, 128]."""
    import torchaudio.compliance.kaldi as kaldi

    feats = [kaldi.fbank(w.unsqueeze(0) * 2**15, num_mel_bins=128, sample_frequency=SAMPLE_RATE,
                         frame_length=25, frame_shift=10) for w in waveforms]
    return (torch.stack(feats) - FBANK_MEAN) / (2 * FBANK_STD)


def _relative_bucket(rel: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5-style bidirectional log buckets of relative positions."""
    half = num_buckets // 2
    bucket = (rel > 0).long() * half
    rel = rel.abs()
    exact = half // 2
    large = exact + (torch.log(rel.float().clamp(min=1) / exact) / math.log(max_distance / exact) * (half - exact)).long()
    large = large.clamp(max=half - 1)
    return bucket + torch.where(rel < exact, rel, large)


class PositionalConv(nn.Module):
    """Grouped 1-D convolution with weight norm over dim 2 (upstream ``weight_g`` / ``weight_v``)."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        self.kernel, self.groups = kernel, groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.randn(dim, dim // groups, kernel) * math.sqrt(4 / (kernel * dim)))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, T]
        norm = self.weight_v.norm(dim=(0, 1), keepdim=True)
        weight = self.weight_v * (self.weight_g / norm)
        y = F.conv1d(x, weight, self.bias, padding=self.kernel // 2, groups=self.groups)
        if self.kernel % 2 == 0:
            y = y[..., :-1]  # "same" length for an even kernel
        return F.gelu(y)


class Attention(nn.Module):
    def __init__(self, cfg: BEATsConfig, has_bias_table: bool):
        super().__init__()
        d, h = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        self.heads, self.head_dim = h, d // h
        self.scaling = self.head_dim**-0.5
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.cfg = cfg
        if has_bias_table:
            self.relative_attention_bias = nn.Embedding(cfg.num_buckets, h)
        if cfg.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, h, 1, 1))

    def position_bias(self, length: int) -> torch.Tensor:
        pos = torch.arange(length, device=self.relative_attention_bias.weight.device)
        buckets = _relative_bucket(pos[None, :] - pos[:, None], self.cfg.num_buckets, self.cfg.max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)  # [H, T, T]

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # [B, H, T, hd]
        k = self.k_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        logits = (q * self.scaling) @ k.transpose(-1, -2)
        if bias is not None:
            if self.cfg.gru_rel_pos:  # per-query gate on the shared bias, from the raw query
                gates = torch.sigmoid(self.grep_linear(q).view(b, self.heads, t, 2, 4).sum(-1))
                gate_a, gate_b = gates[..., :1], gates[..., 1:]
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias  # [B, H, T, T]
            logits = logits + bias
        attn = torch.softmax(logits, dim=-1) @ v
        return self.out_proj(attn.transpose(1, 2).reshape(b, t, d))


class Layer(nn.Module):
    def __init__(self, cfg: BEATsConfig, has_bias_table: bool):
        super().__init__()
        d = cfg.encoder_embed_dim
        self.self_attn = Attention(cfg, has_bias_table)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, cfg.encoder_ffn_embed_dim), nn.Linear(cfg.encoder_ffn_embed_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.pre_norm = cfg.layer_norm_first
        self.alpha = math.pow(2 * cfg.encoder_layers, 0.25) if cfg.deep_norm else 1.0

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.self_attn(self.self_attn_layer_norm(x), bias)
            return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))
        x = self.self_attn_layer_norm(x * self.alpha + self.self_attn(x, bias))
        return self.final_layer_norm(x * self.alpha + self.fc2(F.gelu(self.fc1(x))))


class Encoder(nn.Module):
    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        self.pos_conv = nn.Sequential(PositionalConv(cfg.encoder_embed_dim, cfg.conv_pos, cfg.conv_pos_groups))
        self.layers = nn.ModuleList(Layer(cfg, cfg.relative_position_embedding and i == 0) for i in range(cfg.encoder_layers))
        self.layer_norm = nn.LayerNorm(cfg.encoder_embed_dim)
        self.cfg = cfg

    def forward(self, x: torch.Tensor, upto_layer: int | None = None) -> torch.Tensor:
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.cfg.layer_norm_first:
            x = self.layer_norm(x)
        bias = None
        if self.cfg.relative_position_embedding:
            bias = self.layers[0].self_attn.position_bias(x.shape[1]).unsqueeze(0)
        last = len(self.layers) if upto_layer is None else upto_layer
        for layer in self.layers[:last]:
            x = layer(x, bias)
        if self.cfg.layer_norm_first and upto_layer is None:
            x = self.layer_norm(x)
        return x


class BEATs(nn.Module):
    """``forward(waveforms)`` -> token features [B, T' * 8, width] of the chosen layer."""

    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, cfg.input_patch_size, cfg.input_patch_size, bias=cfg.conv_bias)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.post_extract_proj = nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim) if cfg.embed_dim != cfg.encoder_embed_dim else None
        self.encoder = Encoder(cfg)
        self.predictor = nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class) if cfg.finetuned_model else None

    @property
    def freq_patches(self) -> int:
        return 128 // self.cfg.input_patch_size

    def tokens(self, fbank: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """Normalised fbank [B, frames, 128] -> tokens [B, N, width] (time-major: t * 8 + f)."""
        x = self.patch_embedding(fbank.unsqueeze(1))  # [B, C, T', F']
        x = self.layer_norm(x.flatten(2).transpose(1, 2))
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.encoder(x, upto_layer=layer)

    def forward(self, waveforms: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        return self.tokens(fbank_features(waveforms), layer)

    def classify(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Clip-level class probabilities of a fine-tuned checkpoint (mean of token logits, sigmoid)."""
        if self.predictor is None:
            raise ValueError("this BEATs checkpoint has no classifier (not a fine-tuned model)")
        return torch.sigmoid(self.predictor(self(waveforms)).mean(dim=1))


def pool_tokens(tokens: torch.Tensor, pooling: str, freq_patches: int) -> torch.Tensor:
    """Clip embedding of tokens [B, N, width]: ``mean`` over all tokens, or ``time-mean``
    (mean over time keeping the frequency patches, [B, freq_patches * width]); methods.md section 4."""
    if pooling == "mean":
        return tokens.mean(dim=1)
    if pooling == "time-mean":
        b, n, w = tokens.shape
        return tokens.reshape(b, n // freq_patches, freq_patches, w).mean(dim=1).reshape(b, freq_patches * w)
    raise ValueError(f"unknown pooling {pooling!r}; choose mean or time-mean")


class PooledBEATs(nn.Module):
    """Waveforms -> pooled embedding of one layer (differentiable: the student's forward)."""

    def __init__(self, model: BEATs, layer: int | None = None, pooling: str = "mean"):
        super().__init__()
        self.model, self.layer, self.pooling = model, layer, pooling

    @property
    def dim(self) -> int:
        width = self.model.cfg.encoder_embed_dim
        return width * self.model.freq_patches if self.pooling == "time-mean" else width

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return pool_tokens(self.model(waveforms, layer=self.layer), self.pooling, self.model.freq_patches)
