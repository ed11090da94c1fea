//! The conditional NCSN++-lite U-Net (docs/score-model.md §4): \[S21\] `ncsnpp.NCSNpp` with
//! `resblock_type = 'biggan'`, `progressive = progressive_input = 'none'`, `fir = False`, `attention_type = 'ddpm'`,
//! `conditional = True`, and the condition concatenated to the (scaled) noisy target as extra input channels
//! (\[H25\]).

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand_chacha::ChaCha8Rng;

use super::attention::AttnBlock;
use super::blocks::{ResnetBlockBigGAN, Sampling};
use super::config::{Embedding, ModelConfig};
use super::conv::Conv;
use super::embedding::{TimeEmbedding, FOURIER_W_NAME};
use super::init::seeded_var_builder;
use super::kernels::norm::GroupNormAct;
use crate::resources::MemoryEstimate;
use crate::{Error, Result};

/// One resolution level of the encoder: `num_res_blocks` blocks, their attention blocks (at attention
/// resolutions), then a down block (not at the last level).
#[derive(Debug, Clone)]
struct DownLevel {
    res: Vec<ResnetBlockBigGAN>,
    attn: Vec<AttnBlock>,
    downsample: Option<ResnetBlockBigGAN>,
}

/// One resolution level of the decoder: `num_res_blocks + 1` blocks on `cat([h, skip])`, one attention block after
/// them (at attention resolutions; as \[S21\] `ncsnpp.py`, once per level on the way up), then an up block (not at
/// level 0).
#[derive(Debug, Clone)]
struct UpLevel {
    res: Vec<ResnetBlockBigGAN>,
    attn: Option<AttnBlock>,
    upsample: Option<ResnetBlockBigGAN>,
}

/// The conditional NCSN++-lite score network `F_θ(c_in·x, y, c_noise)` (docs/score-model.md §4).
///
/// Layout (\[S21\] `ncsnpp.NCSNpp.__init__`/`forward`; `L = ch_mult.len()`, `C_l = nf·ch_mult[l]`,
/// `R = num_res_blocks`):
///
/// ```text
/// temb = Dense₁(SiLU(Dense₀(Fourier(label) | Positional(label))))                  temb.{fourier.W, dense0, dense1}
/// h = Conv3x3(cat[x, y]);  hs = [h]                                                  input.conv
/// for l in 0..L:   R × { h = ResBlock(h → C_l); h = Attn(h) if res_l ∈ attn; hs.push(h) }   down.l.res.i, down.l.attn.i
///                  if l < L−1 { h = ResBlock_down(h); hs.push(h) }                   down.l.downsample
/// h = ResBlock(h); h = Attn(h); h = ResBlock(h)                                      mid.res0, mid.attn, mid.res1
/// for l in L−1..=0: (R+1) × { h = ResBlock(cat[h, hs.pop()] → C_l) }                 up.l.res.i
///                  h = Attn(h) if res_l ∈ attn                                      up.l.attn.0
///                  if l > 0 { h = ResBlock_up(h) }                                   up.l.upsample
/// out = Conv3x3(SiLU(GN(h)) → C_target)                                              out.gn, out.conv
/// ```
///
/// The last convolution of every residual block, the output projection of every attention block and the output
/// convolution start at \[S21\] `init_scale = 0` (→ 1e-10), so at initialization every block is an identity (up to
/// its skip 1×1) and the network outputs ≈ 0.
///
/// The Fourier matrix `W` is a constant, not a `Var` (see [`NcsnppUnet::constants`]).
#[derive(Debug, Clone)]
pub struct NcsnppUnet {
    cfg: ModelConfig,
    temb: TimeEmbedding,
    input: Conv,
    down: Vec<DownLevel>,
    mid_res0: ResnetBlockBigGAN,
    mid_attn: AttnBlock,
    mid_res1: ResnetBlockBigGAN,
    /// Indexed by level (0 = full resolution); run in reverse.
    up: Vec<UpLevel>,
    /// GroupNorm + SiLU.
    out_gn: GroupNormAct,
    out_conv: Conv,
    dtype: DType,
    device: Device,
}

impl NcsnppUnet {
    /// Name of the first convolution's weight `[nf, target_channels + cond_channels, 3, 3]`: the only place the
    /// condition enters the network (input channels ordered targets first, then conditions).
    pub const INPUT_CONV_WEIGHT: &'static str = "input.conv.weight";

    /// Builds the network on `vb` (validates `cfg` first). With `VarBuilder::from_varmap` the initial weights come
    /// from candle's RNG, which cannot be seeded on the CPU; use [`NcsnppUnet::new_seeded`] (or
    /// [`super::seeded_var_builder`]) for initial weights that depend only on `cfg.seed`. With
    /// `VarBuilder::from_tensors` of a checkpoint the stored weights are used, including `temb.fourier.W` when present.
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let nf = cfg.nf;
        let temb_dim = 4 * nf;
        let p = cfg.dropout;
        let sr = cfg.skip_rescale;
        let levels = cfg.levels();
        let block = |i: usize, o: usize, s: Sampling, vb: VarBuilder| {
            ResnetBlockBigGAN::new(i, o, temb_dim, s, p, sr, vb)
        };

        let temb = TimeEmbedding::new(cfg, vb.pp("temb"))?;
        let in_ch = cfg.target_channels + cfg.cond_channels;
        let input = Conv::new(in_ch, nf, 3, 1.0, vb.pp("input").pp("conv"))?;

        let mut hs_c = vec![nf];
        let mut ch = nf;
        let mut down = Vec::with_capacity(levels);
        for l in 0..levels {
            let vbl = vb.pp("down").pp(l);
            let out = nf * cfg.ch_mult[l];
            let with_attn = cfg.attn_resolutions.contains(&cfg.resolution(l));
            let mut res = Vec::with_capacity(cfg.num_res_blocks);
            let mut attn = Vec::new();
            for i in 0..cfg.num_res_blocks {
                res.push(block(ch, out, Sampling::Plain, vbl.pp("res").pp(i))?);
                ch = out;
                if with_attn {
                    attn.push(AttnBlock::new(ch, sr, vbl.pp("attn").pp(i))?);
                }
                hs_c.push(ch);
            }
            let downsample = if l + 1 < levels {
                hs_c.push(ch);
                Some(block(ch, ch, Sampling::Down, vbl.pp("downsample"))?)
            } else {
                None
            };
            down.push(DownLevel {
                res,
                attn,
                downsample,
            });
        }

        let vbm = vb.pp("mid");
        let mid_res0 = block(ch, ch, Sampling::Plain, vbm.pp("res0"))?;
        let mid_attn = AttnBlock::new(ch, sr, vbm.pp("attn"))?;
        let mid_res1 = block(ch, ch, Sampling::Plain, vbm.pp("res1"))?;

        let mut up: Vec<Option<UpLevel>> = (0..levels).map(|_| None).collect();
        for l in (0..levels).rev() {
            let vbl = vb.pp("up").pp(l);
            let out = nf * cfg.ch_mult[l];
            let mut res = Vec::with_capacity(cfg.num_res_blocks + 1);
            for i in 0..=cfg.num_res_blocks {
                let skip = hs_c.pop().expect("skip stack underflow (layout bug)");
                res.push(block(ch + skip, out, Sampling::Plain, vbl.pp("res").pp(i))?);
                ch = out;
            }
            let attn = if cfg.attn_resolutions.contains(&cfg.resolution(l)) {
                Some(AttnBlock::new(ch, sr, vbl.pp("attn").pp(0))?)
            } else {
                None
            };
            let upsample = if l > 0 {
                Some(block(ch, ch, Sampling::Up, vbl.pp("upsample"))?)
            } else {
                None
            };
            up[l] = Some(UpLevel {
                res,
                attn,
                upsample,
            });
        }
        debug_assert!(hs_c.is_empty());
        let up = up
            .into_iter()
            .map(|u| u.expect("every level built"))
            .collect();

        let vbo = vb.pp("out");
        let out_gn = GroupNormAct::new(ch, true, vbo.pp("gn"))?;
        let out_conv = Conv::new(ch, cfg.target_channels, 3, 0.0, vbo.pp("conv"))?;

        Ok(NcsnppUnet {
            cfg: cfg.clone(),
            temb,
            input,
            down,
            mid_res0,
            mid_attn,
            mid_res1,
            up,
            out_gn,
            out_conv,
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// Builds the network with its variables created in `varmap` from the host RNG seeded by `cfg.seed`
    /// ([`super::seeded_var_builder`]): the same config gives bit-identical initial weights on every run.
    pub fn new_seeded(
        cfg: &ModelConfig,
        varmap: &VarMap,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Self::new(cfg, seeded_var_builder(varmap, cfg.seed, dtype, device))
    }

    /// The network `F_θ`.
    ///
    /// `x`: `[B, target_channels, H, W]` (already multiplied by `c_in`), `cond`: `[B, cond_channels, H, W]`,
    /// `noise_label`: `[B]` (same dtype as `x`: VE `ln σ`, EDM `¼ ln σ`, VP `999·t`), with `H = W = image_size` and
    /// the network's dtype. `dropout`: `Some(rng)` on the train path (masks drawn from `rng`, in block order); `None`
    /// for evaluation. Returns `[B, target_channels, H, W]`.
    ///
    /// Errors: [`Error::Shape`] for a wrong rank, channel count, size or batch mismatch, [`Error::Invalid`] for a
    /// wrong dtype or device, [`Error::NonFinite`] if an input holds NaN or Inf.
    pub fn forward(
        &self,
        x: &Tensor,
        cond: &Tensor,
        noise_label: &Tensor,
        dropout: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor> {
        self.check_inputs(x, cond, noise_label)?;
        let mut rng = if self.cfg.dropout > 0.0 {
            dropout
        } else {
            None
        };
        let act_temb = self.temb.forward(noise_label)?.silu()?;

        let mut hs = Vec::with_capacity(1 + self.cfg.levels() * (self.cfg.num_res_blocks + 1));
        hs.push(self.input.forward(&Tensor::cat(&[x, cond], 1)?)?);
        for lvl in &self.down {
            for (i, res) in lvl.res.iter().enumerate() {
                let mut h = res.forward(last(&hs), &act_temb, rng.as_deref_mut())?;
                if let Some(a) = lvl.attn.get(i) {
                    h = a.forward(&h)?;
                }
                hs.push(h);
            }
            if let Some(d) = &lvl.downsample {
                let h = d.forward(last(&hs), &act_temb, rng.as_deref_mut())?;
                hs.push(h);
            }
        }

        let mut h = self
            .mid_res0
            .forward(last(&hs), &act_temb, rng.as_deref_mut())?;
        h = self.mid_attn.forward(&h)?;
        h = self.mid_res1.forward(&h, &act_temb, rng.as_deref_mut())?;

        for lvl in self.up.iter().rev() {
            for res in &lvl.res {
                let skip = hs.pop().expect("skip stack underflow (layout bug)");
                h = res.forward(
                    &Tensor::cat(&[&h, &skip], 1)?,
                    &act_temb,
                    rng.as_deref_mut(),
                )?;
            }
            if let Some(a) = &lvl.attn {
                h = a.forward(&h)?;
            }
            if let Some(u) = &lvl.upsample {
                h = u.forward(&h, &act_temb, rng.as_deref_mut())?;
            }
        }
        debug_assert!(hs.is_empty());

        let h = self.out_gn.forward(&h)?;
        self.out_conv.forward(&h)
    }

    /// The configuration the network was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Non-trained constants to store in checkpoints next to the `VarMap`: `[("temb.fourier.W", W)]` (empty for the
    /// positional embedding).
    pub fn constants(&self) -> Vec<(String, Tensor)> {
        match self.temb.fourier() {
            Some(f) => vec![(FOURIER_W_NAME.to_string(), f.weight().clone())],
            None => Vec::new(),
        }
    }

    fn check_inputs(&self, x: &Tensor, cond: &Tensor, label: &Tensor) -> Result<()> {
        let s = self.cfg.image_size;
        let shape_err = |what: &str, t: &Tensor, expected: String| Error::Shape {
            what: format!("NcsnppUnet::forward {what}"),
            got: t.dims().to_vec(),
            expected,
        };
        let b = match x.dims() {
            &[b, c, h, w] if b > 0 && c == self.cfg.target_channels && h == s && w == s => b,
            _ => {
                return Err(shape_err(
                    "x",
                    x,
                    format!("[B ≥ 1, {}, {s}, {s}]", self.cfg.target_channels),
                ))
            }
        };
        let expected_cond = [b, self.cfg.cond_channels, s, s];
        if cond.dims() != expected_cond {
            return Err(shape_err(
                "cond",
                cond,
                format!("{expected_cond:?} (batch of x, cond_channels, image_size²)"),
            ));
        }
        if label.dims() != [b] {
            return Err(shape_err(
                "noise_label",
                label,
                format!("[{b}] (one label per row of x)"),
            ));
        }
        for (what, t) in [("x", x), ("cond", cond), ("noise_label", label)] {
            if t.dtype() != self.dtype {
                return Err(Error::invalid(
                    format!("NcsnppUnet::forward {what}"),
                    format!("dtype {:?}, the network is {:?}", t.dtype(), self.dtype),
                ));
            }
            if !t.device().same_device(&self.device) {
                return Err(Error::invalid(
                    format!("NcsnppUnet::forward {what}"),
                    format!("on {:?}, the network is on {:?}", t.device(), self.device),
                ));
            }
            let sum = t.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !sum.is_finite() {
                return Err(Error::NonFinite {
                    what: format!("NcsnppUnet::forward {what}"),
                    msg: "contains NaN or Inf".into(),
                });
            }
        }
        Ok(())
    }
}

fn last(hs: &[Tensor]) -> &Tensor {
    hs.last().expect("skip stack is never empty here")
}

/// Parameters, forward FLOPs and activation sizes of one layer walk (see [`param_count`], [`forward_flops`],
/// [`activation_count`]).
#[derive(Default)]
struct Cost {
    params: usize,
    /// Multiply-accumulates per sample.
    macs: f64,
    acts: ActivationCount,
}

/// Activation elements per sample of one forward pass of [`NcsnppUnet`], from the same layout walk as
/// [`param_count`]: what the memory of training and sampling scales with (`crate::train::memory`,
/// `crate::sample::memory` turn them into bytes with factors measured on real runs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ActivationCount {
    /// Feature-map elements: the inputs and outputs of every convolution, normalisation and block tail (what
    /// autograd keeps for the backward pass).
    pub maps: f64,
    /// Attention score elements: N² per attention block, N = pixels at its resolution.
    pub attention: f64,
    /// The largest single score matrix (the finest attention resolution): what inference holds at one time.
    pub attention_peak: f64,
}

impl ActivationCount {
    /// Adds the activation memory of `rows` samples in flight (`rows_label` says what they are) to `estimate`:
    /// `map_bytes` per feature-map element, `score_bytes` per element of `scores` attention-score elements per
    /// sample ([`ActivationCount::attention`] while training, [`ActivationCount::attention_peak`] in inference).
    pub fn add_to(
        &self,
        estimate: &mut MemoryEstimate,
        rows: f64,
        rows_label: &str,
        map_bytes: f64,
        scores: f64,
        score_bytes: f64,
    ) {
        estimate.add(
            format!("activations ({rows_label})"),
            rows * self.maps * map_bytes,
        );
        if scores > 0.0 {
            let tokens = self.attention_peak.sqrt().round() as u64;
            estimate.add(
                format!("attention scores ({tokens} tokens at the finest attention)"),
                rows * scores * score_bytes,
            );
        }
    }
}

impl Cost {
    fn conv(&mut self, c_in: usize, c_out: usize, k: usize, res: usize) {
        self.params += c_in * c_out * k * k + c_out;
        self.macs += (c_in * c_out * k * k * res * res) as f64;
    }
    /// `c` maps of `res`² pixels held per sample.
    fn maps(&mut self, c: usize, res: usize) {
        self.acts.maps += (c * res * res) as f64;
    }
    fn linear(&mut self, c_in: usize, c_out: usize) {
        self.params += c_in * c_out + c_out;
        self.macs += (c_in * c_out) as f64;
    }
    fn gn(&mut self, c: usize) {
        self.params += 2 * c;
    }
    /// `res` is the input resolution; up/down blocks change it before their convolutions.
    fn res_block(&mut self, c_in: usize, c_out: usize, temb: usize, res: usize, s: Sampling) {
        let r = match s {
            Sampling::Plain => res,
            Sampling::Up => 2 * res,
            Sampling::Down => res / 2,
        };
        self.gn(c_in);
        self.conv(c_in, c_out, 3, r);
        self.linear(temb, c_out);
        self.gn(c_out);
        self.conv(c_out, c_out, 3, r);
        if c_in != c_out || s != Sampling::Plain {
            self.conv(c_in, c_out, 1, r);
        }
        // GN+SiLU of the input; conv, +temb, GN+SiLU, conv, tail of the output; the resampled input.
        self.maps(c_in, res);
        self.maps(5 * c_out, r);
        if s != Sampling::Plain {
            self.maps(c_in, r);
        }
    }
    fn attn(&mut self, c: usize, res: usize) {
        let n = (res * res) as f64;
        self.gn(c);
        for _ in 0..4 {
            self.conv(c, c, 1, res);
        }
        // qᵀk and w·v: 2·N²·C.
        self.macs += 2.0 * n * n * c as f64;
        // GN, q, k, v, the mix and the output projection; one N×N score matrix.
        self.maps(6 * c, res);
        self.acts.attention += n * n;
        self.acts.attention_peak = self.acts.attention_peak.max(n * n);
    }
}

/// Walks the layout of [`NcsnppUnet`] (same order as `new`) and counts parameters and MACs per sample.
fn cost(cfg: &ModelConfig) -> Cost {
    let mut c = Cost::default();
    let nf = cfg.nf;
    let temb = 4 * nf;
    let emb = match cfg.embedding {
        Embedding::Fourier => 2 * nf,
        Embedding::Positional => nf,
    };
    c.linear(emb, temb);
    c.linear(temb, temb);
    let s0 = cfg.image_size;
    c.conv(cfg.target_channels + cfg.cond_channels, nf, 3, s0);
    c.maps(cfg.target_channels + cfg.cond_channels + nf, s0);
    let mut hs_c = vec![nf];
    let mut ch = nf;
    let levels = cfg.levels();
    for l in 0..levels {
        let r = cfg.resolution(l);
        let out = nf * cfg.ch_mult[l];
        for _ in 0..cfg.num_res_blocks {
            c.res_block(ch, out, temb, r, Sampling::Plain);
            ch = out;
            if cfg.attn_resolutions.contains(&r) {
                c.attn(ch, r);
            }
            hs_c.push(ch);
        }
        if l + 1 < levels {
            c.res_block(ch, ch, temb, r, Sampling::Down);
            hs_c.push(ch);
        }
    }
    let r = cfg.resolution(levels - 1);
    c.res_block(ch, ch, temb, r, Sampling::Plain);
    c.attn(ch, r);
    c.res_block(ch, ch, temb, r, Sampling::Plain);
    for l in (0..levels).rev() {
        let r = cfg.resolution(l);
        let out = nf * cfg.ch_mult[l];
        for _ in 0..=cfg.num_res_blocks {
            let skip = hs_c.pop().unwrap_or(0);
            c.res_block(ch + skip, out, temb, r, Sampling::Plain);
            ch = out;
        }
        if cfg.attn_resolutions.contains(&r) {
            c.attn(ch, r);
        }
        if l > 0 {
            c.res_block(ch, ch, temb, r, Sampling::Up);
        }
    }
    c.gn(ch);
    c.conv(ch, cfg.target_channels, 3, s0);
    c.maps(2 * ch + cfg.target_channels, s0);
    c
}

/// Number of trained parameters of [`NcsnppUnet`] for `cfg` (every `Var`; the Fourier matrix `W` is not counted),
/// computed analytically from the layout (a test checks it against a built `VarMap`).
pub fn param_count(cfg: &ModelConfig) -> usize {
    cost(cfg).params
}

/// Forward FLOPs per sample at `cfg.image_size` (1 MAC = 2 FLOP): all convolutions (3×3 and 1×1), the dense
/// layers, the attention projections and the two attention products `qᵀk`, `w·v`. GroupNorm, activations,
/// resampling and additions (O(activations), a few %) are not counted.
pub fn forward_flops(cfg: &ModelConfig) -> f64 {
    2.0 * cost(cfg).macs
}

/// Activation elements per sample of one forward pass at `cfg.image_size` ([`ActivationCount`]).
pub fn activation_count(cfg: &ModelConfig) -> ActivationCount {
    cost(cfg).acts
}

#[cfg(test)]
mod tests;
