//! Training logs: `train_log.csv` (one row per step, appended as the trainer reads its steps back: every `log_every`
//! steps and before each checkpoint and validation), `val_log.csv`, and
//! `.npy` copies of both rewritten at every checkpoint (for numpy users). A resumed run cuts the CSVs back to its
//! checkpoint's step, so the logs always describe one consistent run.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::io::{write_atomic, write_npy};
use crate::{Error, Result};

pub const TRAIN_LOG: &str = "train_log.csv";
pub const VAL_LOG: &str = "val_log.csv";
const TRAIN_HEADER: &str = "step,loss,loss_per_dim,grad_norm,lr,step_s";

/// One training step's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct StepStats {
    /// Steps done after this one (1 for the first).
    pub step: u64,
    /// The optimised loss (reduction of the config).
    pub loss: f64,
    /// Mean squared residual per dimension (comparable across reductions and resolutions).
    pub loss_per_dim: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used by the update.
    pub lr: f64,
    /// Wall seconds of the step.
    pub step_s: f64,
}

/// One validation: per-dimension DSM loss of the EMA weights at each validation time, and their mean.
#[derive(Debug, Clone, PartialEq)]
pub struct ValStats {
    pub step: u64,
    pub per_time: Vec<f64>,
    pub mean: f64,
}

fn append(path: &Path, header: &str, line: &str) -> Result<()> {
    let new = !path.exists();
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let text = if new {
        format!("{header}\n{line}\n")
    } else {
        format!("{line}\n")
    };
    f.write_all(text.as_bytes()).map_err(|e| Error::io(path, e))
}

fn train_line(r: &StepStats) -> String {
    // `{:?}` prints the shortest decimal that round-trips, so the CSV holds the exact f64 values.
    format!(
        "{},{:?},{:?},{:?},{:?},{:.4}",
        r.step, r.loss, r.loss_per_dim, r.grad_norm, r.lr, r.step_s
    )
}

fn val_header(times: &[f64]) -> String {
    let cols: Vec<String> = times.iter().map(|t| format!("val_t{t}")).collect();
    format!("step,{},val_mean", cols.join(","))
}

fn val_line(v: &ValStats) -> String {
    let cols: Vec<String> = v.per_time.iter().map(|x| format!("{x:?}")).collect();
    format!("{},{},{:?}", v.step, cols.join(","), v.mean)
}

/// Appends rows (one write; nothing for an empty slice).
pub(crate) fn append_train_rows(dir: &Path, rows: &[StepStats]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = rows.iter().map(train_line).collect();
    append(&dir.join(TRAIN_LOG), TRAIN_HEADER, &lines.join("\n"))
}

pub(crate) fn append_val_row(dir: &Path, v: &ValStats) -> Result<()> {
    // The header is written by `rewrite_logs` when the run directory is attached.
    append(&dir.join(VAL_LOG), "step,val_mean", &val_line(v))
}

/// Numeric rows of a CSV (header skipped); a torn last line from a killed run is ignored.
fn read_rows(path: &Path) -> Result<Vec<Vec<f64>>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.split(',')
                .map(|x| x.trim().parse::<f64>().ok())
                .collect::<Option<Vec<f64>>>()
        })
        .collect())
}

/// Training rows with `step ≤ upto` from an existing log.
pub fn read_train_log(dir: &Path, upto: u64) -> Result<Vec<StepStats>> {
    Ok(read_rows(&dir.join(TRAIN_LOG))?
        .into_iter()
        .filter(|r| r.len() == 6 && r[0] as u64 <= upto)
        .map(|r| StepStats {
            step: r[0] as u64,
            loss: r[1],
            loss_per_dim: r[2],
            grad_norm: r[3],
            lr: r[4],
            step_s: r[5],
        })
        .collect())
}

/// Validation rows with `step ≤ upto` from an existing log.
pub fn read_val_log(dir: &Path, upto: u64) -> Result<Vec<ValStats>> {
    Ok(read_rows(&dir.join(VAL_LOG))?
        .into_iter()
        .filter(|r| r.len() >= 3 && r[0] as u64 <= upto)
        .map(|r| ValStats {
            step: r[0] as u64,
            per_time: r[1..r.len() - 1].to_vec(),
            mean: r[r.len() - 1],
        })
        .collect())
}

/// Rewrites both CSVs from memory (atomically).
pub(crate) fn rewrite_logs(
    dir: &Path,
    train: &[StepStats],
    val: &[ValStats],
    times: &[f64],
) -> Result<()> {
    let mut t = String::from(TRAIN_HEADER);
    t.push('\n');
    for r in train {
        t.push_str(&train_line(r));
        t.push('\n');
    }
    write_atomic(&dir.join(TRAIN_LOG), t.as_bytes())?;
    let mut v = val_header(times);
    v.push('\n');
    for r in val {
        v.push_str(&val_line(r));
        v.push('\n');
    }
    write_atomic(&dir.join(VAL_LOG), v.as_bytes())
}

/// `train_log.npy` `[steps, 6]` and `val_log.npy` `[evaluations, 1 + times + 1]` (f64, same columns as the CSVs).
pub(crate) fn write_npy_logs(dir: &Path, train: &[StepStats], val: &[ValStats]) -> Result<()> {
    let t: Vec<f64> = train
        .iter()
        .flat_map(|r| {
            [
                r.step as f64,
                r.loss,
                r.loss_per_dim,
                r.grad_norm,
                r.lr,
                r.step_s,
            ]
        })
        .collect();
    write_npy(&dir.join("train_log.npy"), &t, &[train.len(), 6])?;
    let cols = val.first().map(|v| v.per_time.len() + 2).unwrap_or(2);
    let v: Vec<f64> = val
        .iter()
        .flat_map(|r| {
            let mut row = vec![r.step as f64];
            row.extend(&r.per_time);
            row.push(r.mean);
            row
        })
        .collect();
    write_npy(&dir.join("val_log.npy"), &v, &[val.len(), cols])
}
