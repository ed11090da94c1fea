//! The conditional NCSN++-lite U-Net (design spec `score-model.md` §4): \[S21\] `ncsnpp.NCSNpp` with
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
use super::norm::GroupNormAct;
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

/// The conditional NCSN++-lite score network `F_θ(c_in·x, y, c_noise)` (spec §4).
///
/// Layout (\[S21\] `ncsnpp.NCSNpp.__init__`/`forward`; `L = ch_mult.len()`, `C_l = nf·ch_mult[l]`, `R = num_res_blocks`):
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

/// Parameters and forward FLOPs of one layer walk (see [`param_count`], [`forward_flops`]).
#[derive(Default)]
struct Cost {
    params: usize,
    /// Multiply-accumulates per sample.
    macs: f64,
}

impl Cost {
    fn conv(&mut self, c_in: usize, c_out: usize, k: usize, res: usize) {
        self.params += c_in * c_out * k * k + c_out;
        self.macs += (c_in * c_out * k * k * res * res) as f64;
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
    }
    fn attn(&mut self, c: usize, res: usize) {
        let n = (res * res) as f64;
        self.gn(c);
        for _ in 0..4 {
            self.conv(c, c, 1, res);
        }
        // qᵀk and w·v: 2·N²·C.
        self.macs += 2.0 * n * n * c as f64;
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::sde::standard_normals;
    use rand_core::SeedableRng;

    fn tiny(size: usize, target: usize) -> ModelConfig {
        ModelConfig {
            image_size: size,
            target_channels: target,
            attn_resolutions: vec![size / 2],
            ..ModelConfig::tiny()
        }
    }

    fn randn(shape: &[usize], seed: u64) -> Tensor {
        let n = shape.iter().product();
        let v = standard_normals(&mut ChaCha8Rng::seed_from_u64(seed), n);
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn inputs(cfg: &ModelConfig, b: usize, seed: u64) -> (Tensor, Tensor, Tensor) {
        let s = cfg.image_size;
        let x = randn(&[b, cfg.target_channels, s, s], seed);
        let y = randn(&[b, cfg.cond_channels, s, s], seed + 1);
        let label = randn(&[b], seed + 2);
        (x, y, label)
    }

    fn build(cfg: &ModelConfig) -> (NcsnppUnet, VarMap) {
        let vm = VarMap::new();
        let net = NcsnppUnet::new_seeded(cfg, &vm, DType::F32, &Device::Cpu).unwrap();
        (net, vm)
    }

    /// Gives the zero-initialized layers (every `conv1`, attention `out`, `out.conv`) O(1)-scale weights and biases,
    /// as training would, so that every path of the network influences the output.
    fn perturb_zero_init(vm: &VarMap) {
        let mut rng = ChaCha8Rng::seed_from_u64(1234);
        let data = vm.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let zero_init =
                name.contains("conv1.") || name.contains(".out.") || name.starts_with("out.conv");
            if zero_init || name.ends_with(".bias") {
                let var = &data[name];
                let fan = var.dims().iter().skip(1).product::<usize>().max(1) as f64;
                let z = standard_normals(&mut rng, var.elem_count());
                let z: Vec<f32> = z.iter().map(|v| v / fan.sqrt() as f32).collect();
                var.set(&Tensor::from_vec(z, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
            }
        }
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(f32::to_bits)
            .collect()
    }

    #[test]
    fn output_shape_equals_target_shape() {
        for size in [16, 32, 64] {
            for target in [1, 3] {
                let cfg = tiny(size, target);
                let (net, _) = build(&cfg);
                let (x, y, l) = inputs(&cfg, 2, 1);
                let out = net.forward(&x, &y, &l, None).unwrap();
                assert_eq!(out.dims(), x.dims(), "size {size}, target {target}");
            }
        }
        // f64 networks run the same code.
        let cfg = ModelConfig::tiny();
        let vm = VarMap::new();
        let net = NcsnppUnet::new_seeded(&cfg, &vm, DType::F64, &Device::Cpu).unwrap();
        let (x, y, l) = inputs(&cfg, 2, 1);
        let (x, y, l) = (
            x.to_dtype(DType::F64).unwrap(),
            y.to_dtype(DType::F64).unwrap(),
            l.to_dtype(DType::F64).unwrap(),
        );
        let out = net.forward(&x, &y, &l, None).unwrap();
        assert_eq!((out.dims(), out.dtype()), (x.dims(), DType::F64));
    }

    #[test]
    fn output_is_near_zero_at_init() {
        // [S21] init_scale 0 → 1e-10: the output conv has |W| ≲ √(3e-10/fan_avg) ≈ 1e-6, applied to O(1)
        // activations over 9·nf taps, so |out| ~ 1e-5 (not exactly 0, as in [S21]).
        for cfg in [ModelConfig::tiny(), tiny(32, 2)] {
            let (net, _) = build(&cfg);
            let (x, y, l) = inputs(&cfg, 3, 5);
            let out = net.forward(&x, &y, &l, None).unwrap();
            let m = max_abs(&out);
            assert!(m < 1e-4, "max |out| = {m}");
            eprintln!("max |out| at init ({}²): {m:.3e}", cfg.image_size);
        }
    }

    #[test]
    fn every_var_gets_a_gradient() {
        let cfg = ModelConfig {
            dropout: 0.1,
            ..ModelConfig::tiny()
        };
        let (net, vm) = build(&cfg);
        perturb_zero_init(&vm);
        let (x, y, l) = inputs(&cfg, 2, 7);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let out = net.forward(&x, &y, &l, Some(&mut rng)).unwrap();
        let r = randn(out.dims(), 11);
        let loss = (out * r).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let data = vm.data().lock().unwrap();
        assert!(!data.is_empty());
        for (name, var) in data.iter() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            assert_eq!(g.dims(), var.dims(), "{name}");
            let n = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(n > 0.0 && n.is_finite(), "{name}: |grad|² = {n}");
        }
    }

    #[test]
    fn fourier_w_is_a_constant_outside_the_varmap() {
        let cfg = ModelConfig::tiny();
        let (net, vm) = build(&cfg);
        assert!(vm
            .data()
            .lock()
            .unwrap()
            .keys()
            .all(|k| !k.contains("fourier")));
        let c = net.constants();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "temb.fourier.W");
        assert_eq!(c[0].1.dims(), &[cfg.nf]);
        let (net2, _) = build(&cfg);
        assert_eq!(bits(&c[0].1), bits(&net2.constants()[0].1));
        let other = ModelConfig {
            seed: cfg.seed + 1,
            ..cfg.clone()
        };
        let (net3, _) = build(&other);
        assert_ne!(bits(&c[0].1), bits(&net3.constants()[0].1));
        // A plain (candle-RNG) VarMap builder draws the same W: it depends on the seed only.
        let vm4 = VarMap::new();
        let net4 = NcsnppUnet::new(
            &cfg,
            VarBuilder::from_varmap(&vm4, DType::F32, &Device::Cpu),
        )
        .unwrap();
        assert_eq!(bits(&c[0].1), bits(&net4.constants()[0].1));
        // Positional embedding: no constants.
        let vp = ModelConfig {
            embedding: Embedding::Positional,
            precond: super::super::PrecondKind::Vp,
            sde: super::super::SdeConfig {
                kind: super::super::SdeKind::Vp,
                ..Default::default()
            },
            ..cfg
        };
        let (net5, vm5) = build(&vp);
        assert!(net5.constants().is_empty());
        assert_eq!(param_count(&vp), vm_elems(&vm5));
        let (x, y, _) = inputs(&vp, 2, 1);
        let l = Tensor::new(&[0.0f32, 999.0], &Device::Cpu).unwrap();
        assert_eq!(net5.forward(&x, &y, &l, None).unwrap().dims(), x.dims());
    }

    #[test]
    fn seeded_init_is_reproducible() {
        let cfg = ModelConfig::tiny();
        let (_, a) = build(&cfg);
        let (_, b) = build(&cfg);
        let (_, c) = build(&ModelConfig { seed: 1, ..cfg });
        let (a, b, c) = (
            a.data().lock().unwrap(),
            b.data().lock().unwrap(),
            c.data().lock().unwrap(),
        );
        for (k, v) in a.iter() {
            assert_eq!(bits(v.as_tensor()), bits(b[k].as_tensor()), "{k}");
            // Random weights differ across seeds; biases (0) and GroupNorm affine (1, 0) are constants.
            let random = k.ends_with(".weight") && !k.contains("gn");
            assert_eq!(bits(v.as_tensor()) != bits(c[k].as_tensor()), random, "{k}");
        }
    }

    #[test]
    fn dropout_is_seeded_and_only_on_train_path() {
        let cfg = ModelConfig {
            dropout: 0.1,
            ..ModelConfig::tiny()
        };
        let (net, vm) = build(&cfg);
        perturb_zero_init(&vm);
        let (x, y, l) = inputs(&cfg, 2, 3);
        let eval = net.forward(&x, &y, &l, None).unwrap();
        let t1 = net
            .forward(&x, &y, &l, Some(&mut ChaCha8Rng::seed_from_u64(5)))
            .unwrap();
        let t2 = net
            .forward(&x, &y, &l, Some(&mut ChaCha8Rng::seed_from_u64(5)))
            .unwrap();
        let t3 = net
            .forward(&x, &y, &l, Some(&mut ChaCha8Rng::seed_from_u64(6)))
            .unwrap();
        assert_eq!(bits(&t1), bits(&t2));
        assert_ne!(bits(&t1), bits(&t3));
        assert!(max_abs(&(&t1 - &eval).unwrap()) > 1e-3);
        assert_eq!(bits(&eval), bits(&net.forward(&x, &y, &l, None).unwrap()));
        // p = 0: the rng is ignored and untouched.
        let cfg0 = ModelConfig::tiny();
        let net0 = NcsnppUnet::new(
            &cfg0,
            VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
        )
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let a = net0.forward(&x, &y, &l, Some(&mut rng)).unwrap();
        assert_eq!(bits(&a), bits(&eval));
        assert_eq!(rng.get_word_pos(), 0);
    }

    #[test]
    fn from_tensors_roundtrip_is_bit_identical() {
        let cfg = ModelConfig::tiny();
        let (net, vm) = build(&cfg);
        perturb_zero_init(&vm);
        let (x, y, l) = inputs(&cfg, 2, 9);
        let a = net.forward(&x, &y, &l, None).unwrap();
        let ts: HashMap<String, Tensor> = vm
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().copy().unwrap()))
            .collect();
        let net2 = NcsnppUnet::new(
            &cfg,
            VarBuilder::from_tensors(ts.clone(), DType::F32, &Device::Cpu),
        )
        .unwrap();
        assert_eq!(bits(&a), bits(&net2.forward(&x, &y, &l, None).unwrap()));
        // A checkpoint's stored W is used in preference to the seed.
        let mut ts3 = ts;
        let w3 = (net.constants()[0].1.clone() * 2.0).unwrap();
        ts3.insert("temb.fourier.W".into(), w3.clone());
        let net3 = NcsnppUnet::new(
            &cfg,
            VarBuilder::from_tensors(ts3, DType::F32, &Device::Cpu),
        )
        .unwrap();
        assert_eq!(bits(&net3.constants()[0].1), bits(&w3));
        // A missing tensor is an error.
        assert!(NcsnppUnet::new(
            &cfg,
            VarBuilder::from_tensors(HashMap::new(), DType::F32, &Device::Cpu)
        )
        .is_err());
    }

    #[test]
    fn bad_inputs_give_the_right_error() {
        let cfg = ModelConfig::tiny();
        let (net, _) = build(&cfg);
        let (x, y, l) = inputs(&cfg, 2, 1);
        let is_shape = |r: Result<Tensor>, what: &str| match r {
            Err(Error::Shape { what: w, .. }) => assert!(w.contains(what), "{w}"),
            other => panic!("expected a Shape error about {what}, got {other:?}"),
        };
        is_shape(net.forward(&x.flatten_all().unwrap(), &y, &l, None), "x");
        is_shape(net.forward(&x.narrow(1, 0, 1).unwrap(), &y, &l, None), "x");
        is_shape(net.forward(&x.narrow(3, 0, 8).unwrap(), &y, &l, None), "x");
        is_shape(
            net.forward(&x, &y.narrow(1, 0, 1).unwrap(), &l, None),
            "cond",
        );
        is_shape(
            net.forward(&x, &y.narrow(0, 0, 1).unwrap(), &l, None),
            "cond",
        );
        is_shape(net.forward(&x, &y.unsqueeze(0).unwrap(), &l, None), "cond");
        is_shape(
            net.forward(&x, &y, &l.narrow(0, 0, 1).unwrap(), None),
            "noise_label",
        );
        is_shape(
            net.forward(&x, &y, &l.unsqueeze(1).unwrap(), None),
            "noise_label",
        );
        let (x16, y16, l16) = inputs(&tiny(32, 2), 2, 1);
        is_shape(net.forward(&x16, &y16, &l16, None), "x");

        let nan_at = |t: &Tensor| {
            let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mid = v.len() / 2;
            v[mid] = f32::NAN;
            Tensor::from_vec(v, t.shape(), &Device::Cpu).unwrap()
        };
        let inf_label = Tensor::new(&[0.0f32, f32::NEG_INFINITY], &Device::Cpu).unwrap();
        for (r, what) in [
            (net.forward(&nan_at(&x), &y, &l, None), "x"),
            (net.forward(&x, &nan_at(&y), &l, None), "cond"),
            (net.forward(&x, &y, &inf_label, None), "noise_label"),
        ] {
            match r {
                Err(Error::NonFinite { what: w, .. }) => assert!(w.contains(what), "{w}"),
                other => panic!("expected NonFinite about {what}, got {other:?}"),
            }
        }
        match net.forward(&x.to_dtype(DType::F64).unwrap(), &y, &l, None) {
            Err(Error::Invalid { .. }) => {}
            other => panic!("expected Invalid (dtype), got {other:?}"),
        }
        let mut bad = cfg.clone();
        bad.nf = 6;
        assert!(matches!(
            NcsnppUnet::new(&bad, VarBuilder::zeros(DType::F32, &Device::Cpu)),
            Err(Error::Config(_))
        ));
    }

    fn vm_elems(vm: &VarMap) -> usize {
        vm.all_vars().iter().map(|v| v.elem_count()).sum()
    }

    fn paper128() -> ModelConfig {
        ModelConfig {
            image_size: 128,
            ch_mult: vec![1, 1, 2, 2, 2],
            ..ModelConfig::paper()
        }
    }

    #[test]
    fn param_count_equals_varmap_size() {
        for cfg in [
            ModelConfig::tiny(),
            ModelConfig::cpu(),
            ModelConfig::paper(),
            paper128(),
            tiny(32, 3),
            ModelConfig {
                num_res_blocks: 1,
                ..ModelConfig::cpu()
            },
        ] {
            let vm = VarMap::new();
            NcsnppUnet::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
            assert_eq!(
                param_count(&cfg),
                vm_elems(&vm),
                "{}",
                cfg.architecture_key()
            );
        }
    }

    /// Prints the sizes table of the module doc (`cargo test --release --lib sizes_table -- --nocapture`).
    #[test]
    fn sizes_table() {
        let rows = [
            ("paper @64²", ModelConfig::paper()),
            ("paper @128², ch_mult [1,1,2,2,2]", paper128()),
            ("cpu @64²", ModelConfig::cpu()),
            (
                "cpu-1rb @64²",
                ModelConfig {
                    num_res_blocks: 1,
                    ..ModelConfig::cpu()
                },
            ),
            ("tiny @16²", ModelConfig::tiny()),
        ];
        for (name, cfg) in rows {
            eprintln!(
                "| {name} | {} | {:.3} |",
                param_count(&cfg),
                forward_flops(&cfg) / 1e9
            );
        }
        // Spec §6 and the PyTorch reference (benches/reference/unet_torch.py).
        assert_eq!(param_count(&ModelConfig::paper()), 9_881_154);
        assert_eq!(param_count(&ModelConfig::cpu()), 1_758_242);
        assert_eq!(param_count(&ModelConfig::tiny()), 190_370);
    }

    /// One forward + backward of the cpu preset at batch 8, 64² with dropout, with each convolution implementation
    /// (timing only): `cargo test --release --lib unet_cpu_preset_timing -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn unet_cpu_preset_timing() {
        use super::super::conv::{set_conv_impl, ConvImpl};
        let cfg = ModelConfig::cpu();
        let (net, vm) = build(&cfg);
        perturb_zero_init(&vm);
        let (x, y, l) = inputs(&cfg, 8, 1);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // CLUSTERMAPS_CONV=auto|candle runs only that implementation (e.g. to compare peak RSS).
        let imps = match std::env::var("CLUSTERMAPS_CONV").as_deref() {
            Ok("auto") => vec![ConvImpl::Auto],
            Ok("candle") => vec![ConvImpl::Candle],
            _ => vec![ConvImpl::Auto, ConvImpl::Candle, ConvImpl::Auto],
        };
        for imp in imps {
            set_conv_impl(imp);
            for rep in 0..2 {
                let t0 = std::time::Instant::now();
                let out = net.forward(&x, &y, &l, Some(&mut rng)).unwrap();
                let loss = out.sqr().unwrap().sum_all().unwrap();
                let t1 = std::time::Instant::now();
                let grads = loss.backward().unwrap();
                let t2 = std::time::Instant::now();
                drop(grads);
                let t_eval = std::time::Instant::now();
                net.forward(&x, &y, &l, None).unwrap();
                let fwd_eval = t_eval.elapsed().as_secs_f64();
                let (f, b) = ((t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
                eprintln!(
                    "{imp:?} rep {rep}: forward(train) {f:.3} s, backward {b:.3} s, total {:.3} s; \
                     eval forward {fwd_eval:.3} s ({:.1} GFLOP/s)",
                    f + b,
                    8.0 * forward_flops(&cfg) / 1e9 / fwd_eval
                );
            }
        }
        set_conv_impl(ConvImpl::Auto);
    }
}
