//! Issue 15, item 4: `Trainer::fit` keeps loss, gradient norm and clip scale on the device and reads them back every
//! `log_every` steps and before checkpoints. On the CPU that must change nothing (same numbers bit for bit as reading
//! every step, one CSV row per step), and a run that goes non-finite must stop without writing the bad step into a
//! checkpoint.

mod common;

use candle_core::Device;
use clustermaps::checkpoint::{self, Checkpoint};
use clustermaps::model::ModelConfig;
use clustermaps::train::{Precision, Progress, RunConfig, TrainConfig, Trainer};
use clustermaps::Error;
use common::{dummy_stats, gaussian_split};

/// Tiny net, dropout on (the noise stream is exercised), weight decay, and a clip limit far below the gradient
/// norm so that every step is clipped by the device-side scale.
fn config() -> RunConfig {
    let mut model = ModelConfig::tiny();
    model.dropout = 0.1;
    let train = TrainConfig {
        grad_clip: 0.05,
        weight_decay: 0.01,
        log_every: 7,
        checkpoint_every: 5,
        val_clusters: 0,
        ..TrainConfig::tiny()
    };
    RunConfig { model, train }
}

fn trainer(cfg: RunConfig) -> Trainer {
    Trainer::from_data(
        cfg,
        gaussian_split(64, 16, 1),
        None,
        dummy_stats(),
        Device::Cpu,
    )
    .unwrap()
}

fn bits(t: &Trainer) -> (Vec<[u64; 4]>, Vec<u32>) {
    let rows = t
        .history()
        .iter()
        .map(|r| {
            [
                r.step,
                r.loss.to_bits(),
                r.loss_per_dim.to_bits(),
                r.grad_norm.to_bits(),
            ]
        })
        .collect();
    let (p, e) = t.weights().unwrap();
    let mut names: Vec<&String> = p.keys().collect();
    names.sort();
    let w = names
        .iter()
        .flat_map(|n| [&p[*n], &e[*n]])
        .flat_map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .map(f32::to_bits)
        .collect();
    (rows, w)
}

#[test]
fn deferred_fit_equals_reading_every_step_and_logs_every_row() {
    let steps = 23;
    let mut eager = trainer(config());
    for _ in 0..steps {
        eager.step().unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut deferred = trainer(config());
    deferred.attach_run_dir(tmp.path()).unwrap();
    deferred.fit(steps, Progress::Quiet).unwrap();
    let (a, b) = (bits(&eager), bits(&deferred));
    assert_eq!(a.0.len(), steps as usize);
    assert_eq!(a.0, b.0, "loss / gradient-norm sequence");
    assert_eq!(a.1, b.1, "weights and EMA");
    assert!(
        eager.history().iter().all(|r| r.grad_norm > 0.05),
        "every step clipped"
    );
    let csv = std::fs::read_to_string(tmp.path().join("train_log.csv")).unwrap();
    let steps_logged: Vec<u64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps_logged, (1..=steps).collect::<Vec<_>>());
    // TF32 is a GPU mode: on the CPU the run is the f32 run.
    let mut cfg = config();
    cfg.train.precision = Precision::Tf32;
    let mut tf32 = trainer(cfg);
    for _ in 0..5 {
        tf32.step().unwrap();
    }
    assert_eq!(bits(&tf32).0[..], a.0[..5]);
}

#[test]
fn a_non_finite_step_stops_fit_and_leaves_the_last_checkpoint_intact() {
    // A learning rate of 1e30 without warm-up: the first update is finite but huge, the next forward pass
    // overflows. Read-backs only every 100 steps, so the flush before the step-2 checkpoint is what finds it.
    let mut cfg = config();
    cfg.model.dropout = 0.0;
    cfg.train.lr = 1e30;
    cfg.train.warmup = 0;
    cfg.train.grad_clip = -1.0;
    cfg.train.log_every = 100;
    cfg.train.checkpoint_every = 1;
    let tmp = tempfile::tempdir().unwrap();
    let mut t = trainer(cfg);
    t.attach_run_dir(tmp.path()).unwrap();
    let err = t.fit(50, Progress::Quiet).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    let bad_step = t.history().len() as u64 + 1;
    assert!(
        err.to_string()
            .contains(&format!("training step {bad_step}")),
        "{err}"
    );
    assert!(
        bad_step >= 2,
        "the first step must be finite for this test to mean anything"
    );
    let last = Checkpoint::load(&tmp.path().join("last.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(last.meta.step, bad_step - 1);
    for (name, tensor) in &last.tensors {
        let v = tensor.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            v.iter().all(|x| x.is_finite()),
            "{name} holds a non-finite value"
        );
    }
    assert!(checkpoint::list_periodic(tmp.path())
        .unwrap()
        .iter()
        .all(|(s, _)| *s < bad_step));
    let csv = std::fs::read_to_string(tmp.path().join("train_log.csv")).unwrap();
    assert_eq!(
        csv.lines().count() as u64,
        bad_step,
        "header + the finite steps"
    );
}
