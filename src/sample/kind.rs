//! The sampler families of the command line ([`SamplerKind`]) and the by-value dispatch type behind them
//! ([`AnySampler`]).

use std::fmt;
use std::str::FromStr;

use candle_core::Tensor;

use super::driver::{Chunk, Sampler};
use super::edm_heun::{Churn, EdmHeun};
use super::em::EulerMaruyama;
use super::ode::{OdeMethod, OdeSampler};
use super::pc::PredictorCorrector;
use crate::precond::{Denoiser, ScoreFn};
use crate::{Error, Result};

/// Most steps a sampler may take (100× the paper's predictor–corrector).
pub const MAX_STEPS: usize = 100_000;

/// The sampler families selectable from the command line (`--sampler pc|em|ode|ode-heun|heun|heun-churn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    /// \[S21\] predictor–corrector (the paper's sampler, \[H25\]): N = 1000, snr = 0.16.
    Pc,
    /// Euler–Maruyama on the reverse SDE: N = 1000.
    Em,
    /// Probability-flow ODE, RK4 on the ρ-grid: M = 50 (`ode`, `rk4`, `ode-rk4`).
    OdeRk4,
    /// Probability-flow ODE, Heun on the ρ-grid (= EDM Heun without churn): M = 18.
    OdeHeun,
    /// \[K22\] deterministic Heun: N = 18 (`heun`, `edm`).
    Heun,
    /// \[K22\] stochastic Heun, S_churn = 40 preset: N = 40 (`heun-churn`).
    HeunChurn,
}

impl SamplerKind {
    /// Every kind, in CLI order.
    pub const ALL: [SamplerKind; 6] = [
        SamplerKind::Pc,
        SamplerKind::Em,
        SamplerKind::OdeRk4,
        SamplerKind::OdeHeun,
        SamplerKind::Heun,
        SamplerKind::HeunChurn,
    ];

    /// The CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            SamplerKind::Pc => "pc",
            SamplerKind::Em => "em",
            SamplerKind::OdeRk4 => "ode",
            SamplerKind::OdeHeun => "ode-heun",
            SamplerKind::Heun => "heun",
            SamplerKind::HeunChurn => "heun-churn",
        }
    }

    /// Default step count (N for PC/EM/Heun, M for the ODE).
    pub fn default_steps(self) -> usize {
        match self {
            SamplerKind::Pc | SamplerKind::Em => 1000,
            SamplerKind::OdeRk4 => 50,
            SamplerKind::OdeHeun | SamplerKind::Heun => 18,
            SamplerKind::HeunChurn => 40,
        }
    }

    /// The sampler with `steps` (`--steps K`; `None` = [`SamplerKind::default_steps`]) and every other setting at
    /// its default. Checks the settings.
    pub fn build(self, steps: Option<usize>) -> Result<AnySampler> {
        self.build_with(steps, None)
    }

    /// [`SamplerKind::build`] with the churn of `heun-churn` set (`None`: [`Churn::default`]); refused for other
    /// kinds.
    pub fn build_with(self, steps: Option<usize>, churn: Option<Churn>) -> Result<AnySampler> {
        if churn.is_some() && self != SamplerKind::HeunChurn {
            return Err(Error::Config(format!(
                "churn settings apply to the heun-churn sampler, not to {self}"
            )));
        }
        let n = steps.unwrap_or_else(|| self.default_steps());
        // Bounded before any schedule of n entries is allocated (the paper's sampler takes 1000).
        crate::resources::at_most("--steps", n, MAX_STEPS)?;
        let s = match self {
            SamplerKind::Pc => AnySampler::Pc(PredictorCorrector::new(n)),
            SamplerKind::Em => AnySampler::Em(EulerMaruyama::new(n)),
            SamplerKind::OdeRk4 => AnySampler::Ode(OdeSampler::new(OdeMethod::Rk4, n)),
            SamplerKind::OdeHeun => AnySampler::Ode(OdeSampler::new(OdeMethod::Heun, n)),
            SamplerKind::Heun => AnySampler::Heun(EdmHeun::new(n)),
            SamplerKind::HeunChurn => {
                AnySampler::Heun(EdmHeun::with_churn(n, churn.unwrap_or_default()))
            }
        };
        s.validate()?;
        Ok(s)
    }
}

impl fmt::Display for SamplerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SamplerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "pc" => SamplerKind::Pc,
            "em" => SamplerKind::Em,
            "ode" | "rk4" | "ode-rk4" => SamplerKind::OdeRk4,
            "ode-heun" => SamplerKind::OdeHeun,
            "heun" | "edm" => SamplerKind::Heun,
            "heun-churn" | "edm-churn" => SamplerKind::HeunChurn,
            other => {
                return Err(Error::Config(format!(
                    "unknown sampler '{other}'; expected one of pc, em, ode (rk4), ode-heun, heun (edm), heun-churn"
                )))
            }
        })
    }
}

/// A sampler kind with its settings, as `clustermaps compare --sampler` takes it:
/// `KIND[:STEPS[:S_CHURN,S_MIN,S_MAX[,S_NOISE]]]` (e.g. `heun:18`, `heun-churn:40:40,0.1,100`, `em:200`).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerChoice {
    pub kind: SamplerKind,
    /// `None`: [`SamplerKind::default_steps`].
    pub steps: Option<usize>,
    /// Only for `heun-churn` (`None`: [`Churn::default`]).
    pub churn: Option<Churn>,
}

impl SamplerChoice {
    /// Deterministic EDM Heun with `n` levels.
    pub fn heun(n: usize) -> Self {
        SamplerChoice {
            kind: SamplerKind::Heun,
            steps: Some(n),
            churn: None,
        }
    }

    /// The sampler (settings checked).
    pub fn build(&self) -> Result<AnySampler> {
        self.kind.build_with(self.steps, self.churn)
    }
}

impl FromStr for SamplerChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut parts = s.splitn(3, ':');
        let kind: SamplerKind = parts.next().unwrap_or_default().parse()?;
        let steps = match parts.next() {
            Some(n) => Some(n.trim().parse::<usize>().map_err(|_| {
                Error::Config(format!("sampler '{s}': steps '{n}' is not a whole number"))
            })?),
            None => None,
        };
        let churn = parts.next().map(str::parse::<Churn>).transpose()?;
        let choice = SamplerChoice { kind, steps, churn };
        choice.build()?;
        Ok(choice)
    }
}

impl fmt::Display for SamplerChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(n) = self.steps {
            write!(f, ":{n}")?;
        }
        if let Some(c) = self.churn {
            write!(f, ":{c}")?;
        }
        Ok(())
    }
}

/// Any sampler, by value: the dispatch type behind `--sampler` ([`Sampler`] is generic over the model and so not
/// object-safe).
#[derive(Debug, Clone, PartialEq)]
pub enum AnySampler {
    Pc(PredictorCorrector),
    Em(EulerMaruyama),
    Ode(OdeSampler),
    Heun(EdmHeun),
}

impl Sampler for AnySampler {
    fn name(&self) -> String {
        match self {
            AnySampler::Pc(s) => s.name(),
            AnySampler::Em(s) => s.name(),
            AnySampler::Ode(s) => s.name(),
            AnySampler::Heun(s) => s.name(),
        }
    }
    fn nfe(&self) -> usize {
        match self {
            AnySampler::Pc(s) => s.nfe(),
            AnySampler::Em(s) => s.nfe(),
            AnySampler::Ode(s) => s.nfe(),
            AnySampler::Heun(s) => s.nfe(),
        }
    }
    fn steps(&self) -> usize {
        match self {
            AnySampler::Pc(s) => s.steps(),
            AnySampler::Em(s) => s.steps(),
            AnySampler::Ode(s) => s.steps(),
            AnySampler::Heun(s) => s.steps(),
        }
    }
    fn validate(&self) -> Result<()> {
        match self {
            AnySampler::Pc(s) => s.validate(),
            AnySampler::Em(s) => s.validate(),
            AnySampler::Ode(s) => s.validate(),
            AnySampler::Heun(s) => s.validate(),
        }
    }
    fn run_chunk<M: ScoreFn + Denoiser>(
        &self,
        m: &M,
        cond: &Tensor,
        chunk: &mut Chunk,
    ) -> Result<Tensor> {
        match self {
            AnySampler::Pc(s) => s.run_chunk(m, cond, chunk),
            AnySampler::Em(s) => s.run_chunk(m, cond, chunk),
            AnySampler::Ode(s) => s.run_chunk(m, cond, chunk),
            AnySampler::Heun(s) => s.run_chunk(m, cond, chunk),
        }
    }
}
