//! Per-cluster metadata: one row of `meta.csv` (docs/mock-clusters.md §7).
//!
//! Mock clusters fill every field. Imported simulation maps need only `index`, `id`, `m200c_msun` and `z`; other
//! numeric fields are NaN when absent (written as empty CSV cells).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Column names of `meta.csv`, in file order.
pub const META_COLUMNS: [&str; 29] = [
    "index",
    "id",
    "seed",
    "m200c_msun",
    "r200c_kpc",
    "c200c",
    "m500c_msun",
    "r500c_kpc",
    "z",
    "f_gas500",
    "p0",
    "c500",
    "q_dm",
    "s_dm",
    "quat_w",
    "quat_x",
    "quat_y",
    "quat_z",
    "n_sub",
    "f_sub",
    "merger",
    "mass_ratio",
    "sep_proj_kpc",
    "offset1_proj_kpc",
    "offset2_proj_kpc",
    "tx_kev",
    "y500_cyl_kpc2",
    "lx500_soft_erg_s",
    "mass_bin",
];

/// Columns an imported dataset must provide.
pub const META_REQUIRED: [&str; 4] = ["index", "id", "m200c_msun", "z"];

/// Edges of the four evaluation mass bins in log10(M200c / M_sun) (docs/mock-clusters.md §8).
pub const MASS_BIN_EDGES: [f64; 5] = [14.000, 14.325, 14.651, 14.976, 15.301];

/// Mass bin 0..=3 of a cluster of mass `m200c` \[M_sun\]; masses outside the edges go to the end bins.
pub fn mass_bin(m200c: f64) -> u8 {
    let lm = m200c.log10();
    (1..4).filter(|&b| lm >= MASS_BIN_EDGES[b]).count() as u8
}

/// One cluster's metadata. Units: M_sun, physical kpc, keV, erg/s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterMeta {
    /// Row index within its split (array order).
    pub index: u64,
    /// Unique cluster id (mocks: index within split plus a split offset; imports: the user's id).
    pub id: u64,
    /// Generator seed (mocks only).
    pub seed: Option<u64>,
    pub m200c_msun: f64,
    pub r200c_kpc: f64,
    pub c200c: f64,
    pub m500c_msun: f64,
    pub r500c_kpc: f64,
    pub z: f64,
    /// Gas fraction within R500c.
    pub f_gas500: f64,
    /// UPP normalisation P0 after scatter.
    pub p0: f64,
    /// UPP concentration c500 after scatter.
    pub c500: f64,
    /// DM axis ratios b/a and c/a.
    pub q_dm: f64,
    pub s_dm: f64,
    /// Orientation quaternion (w, x, y, z).
    pub quat_w: f64,
    pub quat_x: f64,
    pub quat_y: f64,
    pub quat_z: f64,
    /// Number of subhalos and their bound mass (inside the tidal radii) as a fraction of M200c.
    pub n_sub: f64,
    pub f_sub: f64,
    /// 1 if a major merger is present, 0 otherwise.
    pub merger: f64,
    /// Secondary-to-primary mass ratio ξ (0 without merger).
    pub mass_ratio: f64,
    /// Projected primary–secondary separation \[kpc\].
    pub sep_proj_kpc: f64,
    /// Projected gas–DM offsets of primary and secondary \[kpc\].
    pub offset1_proj_kpc: f64,
    pub offset2_proj_kpc: f64,
    /// Emission-weighted temperature within R500c \[keV\].
    pub tx_kev: f64,
    /// Cylindrical integrated Compton Y within R500c \[kpc²\] (∫ y dA).
    pub y500_cyl_kpc2: f64,
    /// Cylindrical soft-band luminosity within R500c \[erg/s\].
    pub lx500_soft_erg_s: f64,
    /// Evaluation mass bin 0..=3.
    pub mass_bin: u8,
}

impl ClusterMeta {
    /// A row with only the fields an imported dataset must give; everything else NaN / None.
    pub fn imported(index: u64, id: u64, m200c_msun: f64, z: f64) -> Self {
        let nan = f64::NAN;
        ClusterMeta {
            index,
            id,
            seed: None,
            m200c_msun,
            r200c_kpc: nan,
            c200c: nan,
            m500c_msun: nan,
            r500c_kpc: nan,
            z,
            f_gas500: nan,
            p0: nan,
            c500: nan,
            q_dm: nan,
            s_dm: nan,
            quat_w: nan,
            quat_x: nan,
            quat_y: nan,
            quat_z: nan,
            n_sub: nan,
            f_sub: nan,
            merger: nan,
            mass_ratio: nan,
            sep_proj_kpc: nan,
            offset1_proj_kpc: nan,
            offset2_proj_kpc: nan,
            tx_kev: nan,
            y500_cyl_kpc2: nan,
            lx500_soft_erg_s: nan,
            mass_bin: mass_bin(m200c_msun),
        }
    }
}

/// The f64 columns of [`ClusterMeta`] in file order (between `seed` and `mass_bin`), each with its accessors.
/// One table drives both the writer and the reader, so the two cannot drift apart.
type F64Column = (
    &'static str,
    fn(&ClusterMeta) -> f64,
    fn(&mut ClusterMeta, f64),
);

macro_rules! f64_columns {
    ($($field:ident),* $(,)?) => {
        const F64_COLUMNS: &[F64Column] = &[$((
            stringify!($field),
            |m: &ClusterMeta| m.$field,
            |m: &mut ClusterMeta, v: f64| m.$field = v,
        )),*];
    };
}

f64_columns!(
    m200c_msun,
    r200c_kpc,
    c200c,
    m500c_msun,
    r500c_kpc,
    z,
    f_gas500,
    p0,
    c500,
    q_dm,
    s_dm,
    quat_w,
    quat_x,
    quat_y,
    quat_z,
    n_sub,
    f_sub,
    merger,
    mass_ratio,
    sep_proj_kpc,
    offset1_proj_kpc,
    offset2_proj_kpc,
    tx_kev,
    y500_cyl_kpc2,
    lx500_soft_erg_s,
);

/// Formats an f64 so that parsing it back gives the same bits: Rust's shortest round-trip digits, in plain
/// notation for ordinary magnitudes and in exponent notation for very large or small ones (both are shortest
/// round-trip; the switch only keeps cells short). NaN is an empty cell.
pub fn format_f64(v: f64) -> String {
    let a = v.abs();
    if v.is_nan() {
        String::new()
    } else if a == 0.0 || a.is_infinite() || (1e-5..1e16).contains(&a) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// The rows of a `meta.csv`, plus any columns this crate does not define (kept as text, e.g. an imported
/// dataset's `pixel_kpc`, checked by validation).
#[derive(Debug, Clone, PartialEq)]
pub struct MetaTable {
    pub rows: Vec<ClusterMeta>,
    pub extra: Vec<(String, Vec<String>)>,
}

impl MetaTable {
    /// Values of an extra column parsed as f64 (empty = NaN); `None` if the column is absent.
    pub fn extra_f64(&self, name: &str, path: &Path) -> Option<Result<Vec<f64>>> {
        let (_, cells) = self.extra.iter().find(|(n, _)| n == name)?;
        Some(
            cells
                .iter()
                .enumerate()
                .map(|(row, c)| parse_f64(c).ok_or_else(|| cell_error(path, row, name, c)))
                .collect(),
        )
    }
}

/// `meta.csv` text: the [`META_COLUMNS`] header, then one line per row.
pub fn meta_csv_string(rows: &[ClusterMeta]) -> String {
    let mut out = META_COLUMNS.join(",");
    out.push('\n');
    for m in rows {
        let mut cells = vec![
            m.index.to_string(),
            m.id.to_string(),
            m.seed.map_or(String::new(), |s| s.to_string()),
        ];
        cells.extend(F64_COLUMNS.iter().map(|(_, get, _)| format_f64(get(m))));
        cells.push(m.mass_bin.to_string());
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// Writes `meta.csv` atomically (temp file, then rename).
pub fn write_meta_csv(path: &Path, rows: &[ClusterMeta]) -> Result<()> {
    crate::io::write_atomic(path, meta_csv_string(rows).as_bytes())
}

/// Reads a `meta.csv`; see [`parse_meta_csv`].
pub fn read_meta_csv(path: &Path) -> Result<MetaTable> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::MissingFile(path.to_path_buf())
        } else {
            Error::io(path, e)
        }
    })?;
    parse_meta_csv(&text, path)
}

/// Parses `meta.csv` text (plain comma-separated, no quoting needed for numeric data; surrounding quotes and
/// blanks are stripped). Columns may come in any order; [`META_REQUIRED`] must be present and non-empty, every
/// other known column is optional (empty or absent = NaN / None), `mass_bin` is computed from `m200c_msun` when
/// absent, and unknown columns are kept in [`MetaTable::extra`]. `path` only names the file in errors.
pub fn parse_meta_csv(text: &str, path: &Path) -> Result<MetaTable> {
    // Spreadsheet programs start UTF-8 CSVs with a byte-order mark, which would otherwise glue onto the first name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| Error::format(path, "empty file, expected a header line"))?;
    let names: Vec<String> = split_cells(header).map(str::to_string).collect();
    for req in META_REQUIRED {
        if !names.iter().any(|n| n == req) {
            return Err(Error::format(
                path,
                format!(
                    "missing required column '{req}' (required: {})",
                    META_REQUIRED.join(", ")
                ),
            ));
        }
    }
    if let Some(dup) = names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
    {
        return Err(Error::format(
            path,
            format!("column '{}' appears twice", dup.1),
        ));
    }
    let mut table = MetaTable {
        rows: Vec::new(),
        extra: names
            .iter()
            .filter(|n| !META_COLUMNS.contains(&n.as_str()))
            .map(|n| (n.clone(), Vec::new()))
            .collect(),
    };
    for (line_no, line) in lines {
        let cells: Vec<&str> = split_cells(line).collect();
        if cells.len() != names.len() {
            return Err(Error::format(
                path,
                format!(
                    "line {}: {} cells, header has {}",
                    line_no + 1,
                    cells.len(),
                    names.len()
                ),
            ));
        }
        let row = table.rows.len();
        let mut m = ClusterMeta::imported(0, 0, f64::NAN, f64::NAN);
        let mut has_bin = false;
        for (name, cell) in names.iter().zip(&cells) {
            let name = name.as_str();
            match name {
                "index" => m.index = parse_required_u64(cell, path, row, name)?,
                "id" => m.id = parse_required_u64(cell, path, row, name)?,
                "seed" if !cell.is_empty() => {
                    m.seed = Some(parse_required_u64(cell, path, row, name)?)
                }
                "seed" => {}
                "mass_bin" if !cell.is_empty() => {
                    m.mass_bin = cell
                        .parse::<u8>()
                        .ok()
                        .filter(|b| *b <= 3)
                        .ok_or_else(|| cell_error(path, row, name, cell))?;
                    has_bin = true;
                }
                "mass_bin" => {}
                _ => {
                    if let Some((_, _, set)) = F64_COLUMNS.iter().find(|(n, _, _)| *n == name) {
                        let v = parse_f64(cell).ok_or_else(|| cell_error(path, row, name, cell))?;
                        if v.is_nan() && META_REQUIRED.contains(&name) {
                            return Err(cell_error(path, row, name, cell));
                        }
                        set(&mut m, v);
                    } else if let Some((_, col)) = table.extra.iter_mut().find(|(n, _)| n == name) {
                        col.push(cell.to_string());
                    }
                }
            }
        }
        if !has_bin {
            m.mass_bin = mass_bin(m.m200c_msun);
        }
        table.rows.push(m);
    }
    Ok(table)
}

fn split_cells(line: &str) -> impl Iterator<Item = &str> {
    line.split(',').map(|c| c.trim().trim_matches('"').trim())
}

/// Parses a numeric cell; empty means NaN. `None` if it is not a number.
fn parse_f64(cell: &str) -> Option<f64> {
    if cell.is_empty() {
        Some(f64::NAN)
    } else {
        cell.parse().ok()
    }
}

fn parse_required_u64(cell: &str, path: &Path, row: usize, name: &str) -> Result<u64> {
    cell.parse().map_err(|_| cell_error(path, row, name, cell))
}

fn cell_error(path: &Path, row: usize, column: &str, cell: &str) -> Error {
    let what = if cell.is_empty() {
        "empty".to_string()
    } else {
        format!("'{cell}'")
    };
    Error::format(
        path,
        format!("data row {row}, column '{column}': {what} is not a valid value"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock_row(i: u64) -> ClusterMeta {
        let mut m = ClusterMeta::imported(i, 1000 + i, 1.234_567_890_123e14 * (i + 1) as f64, 0.2);
        m.seed = Some(u64::MAX - i);
        m.r500c_kpc = 1.0 / 3.0;
        m.lx500_soft_erg_s = 6.02e44;
        m.y500_cyl_kpc2 = 1.1e-7;
        m.quat_x = -0.0;
        m
    }

    #[test]
    fn column_table_matches_meta_columns() {
        let names: Vec<&str> = ["index", "id", "seed"]
            .into_iter()
            .chain(F64_COLUMNS.iter().map(|c| c.0))
            .chain(["mass_bin"])
            .collect();
        assert_eq!(names, META_COLUMNS);
    }

    #[test]
    fn csv_round_trip_is_bit_exact() {
        let rows: Vec<ClusterMeta> = (0..5).map(mock_row).collect();
        let text = meta_csv_string(&rows);
        let back = parse_meta_csv(&text, Path::new("meta.csv")).unwrap();
        assert!(back.extra.is_empty());
        for (a, b) in rows.iter().zip(&back.rows) {
            assert_eq!(a.index, b.index);
            assert_eq!(a.seed, b.seed);
            for (name, get, _) in F64_COLUMNS {
                assert_eq!(get(a).to_bits(), get(b).to_bits(), "{name}");
            }
            assert_eq!(a.mass_bin, b.mass_bin);
        }
    }

    #[test]
    fn minimal_import_with_extra_column() {
        let text = "id, index ,z,m200c_msun,pixel_kpc\n7,0,0.1,3e14,78.125\n9,1,0.1,1.5e15,\n";
        let t = parse_meta_csv(text, Path::new("m.csv")).unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[1].id, 9);
        assert_eq!(t.rows[1].mass_bin, 3);
        assert!(t.rows[0].r500c_kpc.is_nan());
        assert_eq!(t.rows[0].seed, None);
        let px = t
            .extra_f64("pixel_kpc", Path::new("m.csv"))
            .unwrap()
            .unwrap();
        assert_eq!(px[0], 78.125);
        assert!(px[1].is_nan());
    }

    #[test]
    fn bad_cells_name_row_and_column() {
        let e = parse_meta_csv("index,id,z\n0,1,0.2\n", Path::new("m.csv")).unwrap_err();
        assert!(
            e.to_string()
                .contains("missing required column 'm200c_msun'"),
            "{e}"
        );
        let e =
            parse_meta_csv("index,id,z,m200c_msun\n0,1,0.2,abc\n", Path::new("m.csv")).unwrap_err();
        assert!(
            e.to_string()
                .contains("data row 0, column 'm200c_msun': 'abc'"),
            "{e}"
        );
        let e =
            parse_meta_csv("index,id,z,m200c_msun\n0,1,,1e14\n", Path::new("m.csv")).unwrap_err();
        assert!(e.to_string().contains("column 'z': empty"), "{e}");
        let e = parse_meta_csv("index,id,z,m200c_msun\n0,1,0.2\n", Path::new("m.csv")).unwrap_err();
        assert!(
            e.to_string().contains("line 2: 3 cells, header has 4"),
            "{e}"
        );
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_column() {
        let t = parse_meta_csv(
            "\u{feff}index,id,z,m200c_msun\n0,1,0.2,1e14\n",
            Path::new("m.csv"),
        )
        .unwrap();
        assert_eq!(t.rows.len(), 1);
        assert!(t.extra.is_empty());
    }

    #[test]
    fn mass_bins_follow_the_edges() {
        assert_eq!(mass_bin(1e14), 0);
        assert_eq!(mass_bin(10f64.powf(14.33)), 1);
        assert_eq!(mass_bin(10f64.powf(14.7)), 2);
        assert_eq!(mass_bin(2e15), 3);
        assert_eq!(mass_bin(5e13), 0);
    }
}
