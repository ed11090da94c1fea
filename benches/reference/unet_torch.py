"""PyTorch reference of the clustermaps score network and its training step (for candle/PyTorch speed ratios).

A self-contained re-implementation of the conditional NCSN++-lite U-Net described in docs/score-model.md §4
(after [S21] Song et al. 2021, `yang-song/score_sde_pytorch`, `models/ncsnpp.py` + `models/layerspp.py` with
`resblock_type='biggan'`, `progressive='none'`, `progressive_input='none'`, `fir=False`,
`embedding_type='fourier'`, `attention_type='ddpm'`, `skip_rescale=True`) and of one VE-DSM training step (§7):
loss, backward, global-norm gradient clipping, Adam, EMA. It exists only to time PyTorch on the same work as the
Rust/candle trainer; it is not used by the crate.

Run it directly to print the parameter count of each preset (the Rust network must match them exactly):

    python3 unet_torch.py            # counts per preset
    python3 unet_torch.py --list     # also every tensor name and shape (names follow the Rust VarBuilder paths)
    python3 unet_torch.py --check    # plus a shape check and three training steps of `tiny`
    python3 unet_torch.py --dump     # `preset name shape kind` lines (the format below), nothing else
    python3 unet_torch.py --compare rust_params.txt   # prove the two architectures identical (exit 1 if not)

`--compare` reads the list the Rust side dumps (`cargo bench --bench train -- --list-params`, one line per tensor:
`preset name d0,d1,... kind` with kind `param` for a trained `Var` or `const` for the Fourier `W`) and checks, for
every preset in it, that both networks have exactly the same tensor names, each with the same shape and kind, and
the same parameter count. `benches/run_train_bench.sh` runs it before timing anything.

Choices where the description leaves room (listed so the Rust side can match them):
- The Fourier matrix `W` (nf entries) is a buffer, not a parameter: it is excluded from the parameter count
  (`count_params(..., include_buffers=True)` adds it) and Adam/EMA never see it. Noise label = ln σ ([S21] VE).
- On the way up, attention is applied once per level, after all `num_res_blocks + 1` residual blocks
  ([S21] `ncsnpp.py`); on the way down, after every residual block.
- Down/up residual blocks keep the channel count (`out_ch = in_ch`) and always have the 1×1 skip conv.
- The four attention projections ("NIN") are `[C, C]` weights + `[C]` biases (applied as 1×1 convs); all convs,
  linears and NINs have a bias, every GroupNorm an affine weight and bias.
- Time embedding: `dense1(SiLU(dense0(fourier(ln σ))))`, no activation after `dense1`; each residual block applies
  SiLU to it before its own `dense` (as [S21]).
- Initialization ([S21] `default_init`, variance scaling fan_avg uniform): scale 1 everywhere except q/k/v (0.1,
  the `NIN` default), the attention output and every block's `conv1` and the output conv (0 → 1e-10); biases 0,
  GroupNorm weight 1 / bias 0. Init does not affect the timings.
- Attention uses explicit `bmm` + softmax (the [S21] math), not `F.scaled_dot_product_attention`.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

SQRT_HALF = 1.0 / math.sqrt(2.0)


# --------------------------------------------------------------------------------------------------------------
# Configuration (mirrors `ModelConfig` in src/model/config.rs)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 64
    target_channels: int = 2
    cond_channels: int = 2
    nf: int = 64
    ch_mult: tuple = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple = (16,)
    dropout: float = 0.1
    fourier_scale: float = 16.0
    skip_rescale: bool = True
    seed: int = 42
    # VE SDE
    sigma_min: float = 0.01
    sigma_max: float = 100.0

    @property
    def levels(self) -> int:
        return len(self.ch_mult)

    def resolution(self, level: int) -> int:
        return self.image_size >> level


PRESETS = {
    "paper": ModelConfig(),
    "cpu": ModelConfig(nf=32, ch_mult=(1, 2, 2)),
    "tiny": ModelConfig(image_size=16, nf=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,), dropout=0.0),
}


@dataclass
class TrainConfig:
    lr: float = 2e-4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    warmup: int = 5000  # lr·min(step/warmup, 1), step counted from 0 ([S21] optimization_manager); 0 disables
    grad_clip: float = 1.0  # global L2 norm; negative disables
    ema_decay: float = 0.999
    t_eps: float = 1e-5


# --------------------------------------------------------------------------------------------------------------
# Initialization ([S21] layers.default_init)
# --------------------------------------------------------------------------------------------------------------


def default_init_(weight: torch.Tensor, scale: float, gen: torch.Generator) -> None:
    """Variance scaling, fan_avg, uniform, for a weight `[out, in, (k, k)]`; scale 0 means 1e-10."""
    scale = 1e-10 if scale == 0 else scale
    shape = weight.shape
    receptive = math.prod(shape[2:])
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    bound = math.sqrt(3.0 * scale / (0.5 * (fan_in + fan_out)))
    with torch.no_grad():
        weight.copy_((torch.rand(shape, generator=gen) * 2.0 - 1.0) * bound)


def conv(c_in: int, c_out: int, k: int, init_scale: float, gen: torch.Generator) -> nn.Conv2d:
    m = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=True)
    default_init_(m.weight, init_scale, gen)
    nn.init.zeros_(m.bias)
    return m


def linear(c_in: int, c_out: int, gen: torch.Generator) -> nn.Linear:
    m = nn.Linear(c_in, c_out, bias=True)
    default_init_(m.weight, 1.0, gen)
    nn.init.zeros_(m.bias)
    return m


def group_norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(c // 4, 32), num_channels=c, eps=1e-6, affine=True)


# --------------------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------------------


class GaussianFourierProjection(nn.Module):
    """`[sin(2π c W), cos(2π c W)]` with a fixed `W ~ N(0, scale²)` of `nf` entries (a buffer, not trained)."""

    def __init__(self, nf: int, scale: float, gen: torch.Generator):
        super().__init__()
        self.register_buffer("W", torch.randn(nf, generator=gen) * scale)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        proj = c[:, None] * self.W[None, :] * (2.0 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class TimeEmbedding(nn.Module):
    """Noise label → `[B, 4nf]`: Fourier features (2nf), Linear(2nf→4nf), SiLU, Linear(4nf→4nf)."""

    def __init__(self, cfg: ModelConfig, gen: torch.Generator):
        super().__init__()
        nf = cfg.nf
        self.fourier = GaussianFourierProjection(nf, cfg.fourier_scale, gen)
        self.dense0 = linear(2 * nf, 4 * nf, gen)
        self.dense1 = linear(4 * nf, 4 * nf, gen)

    def forward(self, label: torch.Tensor) -> torch.Tensor:
        return self.dense1(F.silu(self.dense0(self.fourier(label))))


class Nin(nn.Module):
    """[S21] `NIN`: a per-pixel linear map `C_in → C_out` (weight `[C_out, C_in]`, bias `[C_out]`)."""

    def __init__(self, c_in: int, c_out: int, init_scale: float, gen: torch.Generator):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, c_in))
        self.bias = nn.Parameter(torch.zeros(c_out))
        default_init_(self.weight, init_scale, gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)


class AttnBlock(nn.Module):
    """DDPM self-attention over the H·W pixels: `out = (x + out_proj(softmax(qᵀk/√C) applied to v))/√2`."""

    def __init__(self, c: int, skip_rescale: bool, gen: torch.Generator):
        super().__init__()
        self.gn = group_norm(c)
        self.q = Nin(c, c, 0.1, gen)
        self.k = Nin(c, c, 0.1, gen)
        self.v = Nin(c, c, 0.1, gen)
        self.out = Nin(c, c, 0.0, gen)
        self.skip_rescale = skip_rescale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        h = self.gn(x)
        q = self.q(h).reshape(b, c, hh * ww)
        k = self.k(h).reshape(b, c, hh * ww)
        v = self.v(h).reshape(b, c, hh * ww)
        w = torch.softmax(torch.bmm(q.transpose(1, 2), k) * (c ** -0.5), dim=-1)  # [B, N(i), N(j)]
        a = torch.bmm(v, w.transpose(1, 2)).reshape(b, c, hh, ww)  # [B, C, N(i)]
        out = x + self.out(a)
        return out * SQRT_HALF if self.skip_rescale else out


class ResnetBlockBigGAN(nn.Module):
    """[S21] `ResnetBlockBigGANpp` with naive resampling (nearest ×2 up, 2×2 average-pool down)."""

    def __init__(self, c_in: int, c_out: int, temb_dim: int, dropout: float, skip_rescale: bool,
                 gen: torch.Generator, up: bool = False, down: bool = False):
        super().__init__()
        self.gn0 = group_norm(c_in)
        self.conv0 = conv(c_in, c_out, 3, 1.0, gen)
        self.dense = linear(temb_dim, c_out, gen)
        self.gn1 = group_norm(c_out)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv1 = conv(c_out, c_out, 3, 0.0, gen)
        self.skip = conv(c_in, c_out, 1, 1.0, gen) if (c_in != c_out or up or down) else None
        self.up, self.down, self.skip_rescale = up, down, skip_rescale

    def resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x: torch.Tensor, act_temb: torch.Tensor) -> torch.Tensor:
        h = self.resample(F.silu(self.gn0(x)))
        x = self.resample(x)
        h = self.conv0(h) + self.dense(act_temb)[:, :, None, None]
        h = self.conv1(self.dropout(F.silu(self.gn1(h))))
        if self.skip is not None:
            x = self.skip(x)
        return (x + h) * SQRT_HALF if self.skip_rescale else x + h


# --------------------------------------------------------------------------------------------------------------
# The U-Net
# --------------------------------------------------------------------------------------------------------------


class Level(nn.Module):
    """One resolution level: residual blocks, attention blocks (maybe none) and a resampling block (maybe none)."""

    def __init__(self):
        super().__init__()
        self.res = nn.ModuleList()
        self.attn = nn.ModuleList()


class NcsnppUnet(nn.Module):
    """Conditional NCSN++-lite: `forward(x_in [B, target+cond, H, W], sigma [B]) → F [B, target, H, W]`.

    The network output `F` is the raw output; the VE score is `F/σ` ([S21] `scale_by_sigma`), the denoiser
    `x + σF` (docs/score-model.md §5).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.seed)
        nf, tdim = cfg.nf, 4 * cfg.nf
        rb = lambda ci, co, **kw: ResnetBlockBigGAN(ci, co, tdim, cfg.dropout, cfg.skip_rescale, gen, **kw)
        attn = lambda c: AttnBlock(c, cfg.skip_rescale, gen)

        self.temb = TimeEmbedding(cfg, gen)
        # `input.conv` as the Rust VarBuilder path (src/model/unet.rs: vb.pp("input").pp("conv")).
        self.input = nn.ModuleDict({"conv": conv(cfg.target_channels + cfg.cond_channels, nf, 3, 1.0, gen)})

        skips = [nf]  # channels of the tensors kept for the skip connections
        ch = nf
        self.down = nn.ModuleList()
        for lvl, mult in enumerate(cfg.ch_mult):
            level = Level()
            for _ in range(cfg.num_res_blocks):
                level.res.append(rb(ch, nf * mult))
                ch = nf * mult
                if cfg.resolution(lvl) in cfg.attn_resolutions:
                    level.attn.append(attn(ch))
                skips.append(ch)
            if lvl != cfg.levels - 1:
                level.downsample = rb(ch, ch, down=True)
                skips.append(ch)
            self.down.append(level)

        self.mid = nn.ModuleDict({"res0": rb(ch, ch), "attn": attn(ch), "res1": rb(ch, ch)})

        ups = []
        for lvl in reversed(range(cfg.levels)):
            level = Level()
            for _ in range(cfg.num_res_blocks + 1):
                level.res.append(rb(ch + skips.pop(), nf * cfg.ch_mult[lvl]))
                ch = nf * cfg.ch_mult[lvl]
            if cfg.resolution(lvl) in cfg.attn_resolutions:
                level.attn.append(attn(ch))
            if lvl != 0:
                level.upsample = rb(ch, ch, up=True)
            ups.append((lvl, level))
        assert not skips
        # Registered by level index (up.0 = full resolution), executed from the coarsest level.
        self.up = nn.ModuleList([lv for _, lv in sorted(ups, key=lambda p: p[0])])

        self.out = nn.ModuleDict({"gn": group_norm(ch), "conv": conv(ch, cfg.target_channels, 3, 0.0, gen)})

    def forward(self, x_in: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        act_temb = F.silu(self.temb(torch.log(sigma)))

        hs = [self.input["conv"](x_in)]
        for lvl, level in enumerate(self.down):
            for i, block in enumerate(level.res):
                h = block(hs[-1], act_temb)
                if len(level.attn):
                    h = level.attn[i](h)
                hs.append(h)
            if lvl != cfg.levels - 1:
                hs.append(level.downsample(hs[-1], act_temb))

        h = self.mid["res0"](hs[-1], act_temb)
        h = self.mid["attn"](h)
        h = self.mid["res1"](h, act_temb)

        for lvl in reversed(range(cfg.levels)):
            level = self.up[lvl]
            for block in level.res:
                h = block(torch.cat([h, hs.pop()], dim=1), act_temb)
            if len(level.attn):
                h = level.attn[0](h)
            if lvl != 0:
                h = level.upsample(h, act_temb)
        assert not hs

        return self.out["conv"](F.silu(self.out["gn"](h)))


def count_params(model: nn.Module, include_buffers: bool = False) -> int:
    n = sum(p.numel() for p in model.parameters())
    if include_buffers:
        n += sum(b.numel() for b in model.buffers())
    return n


# --------------------------------------------------------------------------------------------------------------
# Training step: VE DSM loss ([S21] losses.get_sde_loss_fn, reduce_mean=False), clip, Adam, EMA
# --------------------------------------------------------------------------------------------------------------


PRECISIONS = ("fp32", "tf32", "bf16")


def set_precision(precision: str) -> None:
    """Process-wide float32 math of matmuls and cuDNN convolutions: IEEE fp32 for `fp32` and `bf16` (whose autocast
    runs the heavy ops in bf16 anyway), TF32 tensor cores for `tf32`. PyTorch's own default lets cuDNN convolutions
    use TF32, so an unqualified "fp32" of PyTorch is partly TF32; here `fp32` is strict."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}, expected one of {PRECISIONS}")
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


class Trainer:
    """Holds the network, Adam and the EMA shadow; `step(x0, y)` does one full training step.

    `device`: where the network, optimiser state and random draws live. `precision="bf16"` runs forward and loss
    under `torch.autocast(dtype=torch.bfloat16)` with f32 master weights, Adam and EMA (the usual mixed precision);
    `fp32`/`tf32` only differ in the math mode that `set_precision` selects. No step reads a value back to the host
    (`update` returns the norm as a tensor), so GPU timings are not paced by host syncs."""

    def __init__(self, model_cfg: ModelConfig, train_cfg: TrainConfig | None = None, device: str = "cpu",
                 precision: str = "fp32"):
        self.cfg = model_cfg
        self.tcfg = train_cfg or TrainConfig()
        self.device = torch.device(device)
        self.precision = precision
        self.net = NcsnppUnet(model_cfg).to(self.device)
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(self.params, lr=self.tcfg.lr, betas=(self.tcfg.beta1, self.tcfg.beta2),
                                    eps=self.tcfg.eps, weight_decay=0.0)
        self.ema = [p.detach().clone() for p in self.params]
        self.ema_updates = 0
        self.step_count = 0
        self.log_ratio = math.log(model_cfg.sigma_max / model_cfg.sigma_min)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """VE marginal std `σ(t) = σ_min (σ_max/σ_min)^t`."""
        return self.cfg.sigma_min * torch.exp(t * self.log_ratio)

    def loss(self, x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample `½ Σ (σ·s_θ + z)²`, mean over the batch; `s_θ = F/σ`."""
        b = x0.shape[0]
        t = torch.rand(b, device=x0.device) * (1.0 - self.tcfg.t_eps) + self.tcfg.t_eps
        sigma = self.sigma(t)
        z = torch.randn_like(x0)
        s4 = sigma[:, None, None, None]
        x_t = x0 + s4 * z
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.net(torch.cat([x_t, y], dim=1), sigma)
        score = out.float() / s4
        per_sample = 0.5 * torch.square(score * s4 + z).reshape(b, -1).sum(dim=-1)
        return per_sample.mean()

    @torch.no_grad()
    def update(self) -> torch.Tensor:
        """Clip the gradients (global L2 norm), warm-up lr, Adam step, EMA update. Returns the gradient norm (a
        0-d tensor on the device)."""
        tc = self.tcfg
        if tc.grad_clip >= 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm=tc.grad_clip)
        else:
            grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad)
                                                              for p in self.params]))
        lr = tc.lr * min(self.step_count / tc.warmup, 1.0) if tc.warmup > 0 else tc.lr
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()
        # [S21] ExponentialMovingAverage(use_num_updates=True): d = min(decay, (1+n)/(10+n)), e ← e − (1−d)(e − p)
        self.ema_updates += 1
        n = self.ema_updates
        d = min(tc.ema_decay, (1 + n) / (10 + n))
        for e, p in zip(self.ema, self.params):
            e.sub_((1.0 - d) * (e - p))
        self.step_count += 1
        return grad_norm

    def step(self, x0: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """One training step; returns (loss, grad_norm before clipping) as host floats."""
        self.net.train()
        loss = self.loss(x0, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = self.update()
        return float(loss.detach()), float(grad_norm)


# --------------------------------------------------------------------------------------------------------------
# CLI: parameter counts
# --------------------------------------------------------------------------------------------------------------


def tensor_list(cfg: ModelConfig) -> dict:
    """`name → (shape, kind)` of every tensor of the network (kind `param`, or `const` for the Fourier `W`)."""
    net = NcsnppUnet(cfg)
    buffers = {n for n, _ in net.named_buffers()}
    return {n: (tuple(t.shape), "const" if n in buffers else "param") for n, t in net.state_dict().items()}


def read_dump(path: str) -> dict:
    """The Rust list: `preset → {name → (shape, kind)}`."""
    out: dict = {}
    with open(path) as f:
        for ln, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 4:
                raise SystemExit(f"{path}:{ln}: expected `preset name d0,d1,... kind`, got {line!r}")
            preset, name, shape, kind = parts
            dims = tuple(int(d) for d in shape.split(",")) if shape else ()
            out.setdefault(preset, {})[name] = (dims, kind)
    return out


def compare(path: str) -> bool:
    """Compares the Rust list at `path` with this module's networks; prints every difference."""
    rust = read_dump(path)
    if not rust:
        print(f"compare: {path} lists no tensors")
        return False
    ok = True
    for preset, rt in rust.items():
        if preset not in PRESETS:
            print(f"compare: unknown preset {preset!r} in {path}")
            ok = False
            continue
        tt = tensor_list(PRESETS[preset])
        problems = [f"  only in Rust:  {n} {list(rt[n][0])}" for n in sorted(rt.keys() - tt.keys())]
        problems += [f"  only in torch: {n} {list(tt[n][0])}" for n in sorted(tt.keys() - rt.keys())]
        problems += [f"  {n}: Rust {list(rt[n][0])} {rt[n][1]}, torch {list(tt[n][0])} {tt[n][1]}"
                     for n in sorted(rt.keys() & tt.keys()) if rt[n] != tt[n]]
        count = lambda d: sum(math.prod(s) for s, k in d.values() if k == "param")
        n_r, n_t = count(rt), count(tt)
        if n_r != n_t:
            problems.append(f"  parameter count: Rust {n_r:,d}, torch {n_t:,d}")
        if problems:
            ok = False
            print(f"compare {preset}: MISMATCH ({len(problems)} problems)")
            print("\n".join(problems))
        else:
            print(f"compare {preset}: identical ({len(tt)} tensors, {n_t:,d} parameters)")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="print every tensor's name and shape")
    ap.add_argument("--check", action="store_true", help="shape check and three training steps of tiny")
    ap.add_argument("--dump", action="store_true", help="only `preset name shape kind` lines, for diffing")
    ap.add_argument("--compare", metavar="FILE", help="compare with the Rust list in FILE (exit 1 on a mismatch)")
    args = ap.parse_args()

    if args.dump:
        for name, cfg in PRESETS.items():
            for n, (shape, kind) in sorted(tensor_list(cfg).items()):
                print(f"{name} {n} {','.join(map(str, shape))} {kind}")
        return
    if args.compare:
        raise SystemExit(0 if compare(args.compare) else 1)

    torch.manual_seed(0)
    print(f"torch {torch.__version__}")
    for name, cfg in PRESETS.items():
        net = NcsnppUnet(cfg)
        print(f"{name:6s} params {count_params(net):>10,d}  (+ Fourier W buffer {cfg.nf} = "
              f"{count_params(net, include_buffers=True):,d})  image {cfg.image_size} nf {cfg.nf} "
              f"ch_mult {list(cfg.ch_mult)} res_blocks {cfg.num_res_blocks} attn {list(cfg.attn_resolutions)}")
        if args.list:
            for pname, t in net.state_dict().items():
                kind = "buffer" if pname.endswith("fourier.W") else "param"
                print(f"    {pname:40s} {str(list(t.shape)):18s} {kind}")

    if args.check:
        cfg = PRESETS["tiny"]
        tr = Trainer(cfg)
        x0 = torch.randn(4, cfg.target_channels, cfg.image_size, cfg.image_size)
        y = torch.randn(4, cfg.cond_channels, cfg.image_size, cfg.image_size)
        out = tr.net(torch.cat([x0, y], 1), torch.full((4,), 1.0))
        assert out.shape == x0.shape, out.shape
        tr.tcfg.warmup = 0
        for i in range(3):
            loss, gn = tr.step(x0, y)
            print(f"check step {i}: loss {loss:.3f} (½·D = {0.5 * x0[0].numel():.0f} at init) grad_norm {gn:.3g}")
        print("check ok")


if __name__ == "__main__":
    main()
