//! `.npy` arrays: [`write_npy`] for whole arrays of any [`NpyElement`] (samples, logs, metrics), a streaming f32
//! writer for datasets (header first, then rows appended, so a split never has to be in memory) and a validating
//! reader that yields one outer-axis row (one cluster) at a time.
//!
//! Dataset headers are parsed and streamed by the `npyz` crate (its header layout is part of the datasets' golden
//! hash); [`write_npy`] writes numpy's own header layout itself. Pixel data is decoded here from little-endian
//! bytes, because datasets only ever hold `<f4` (and `<f8`, accepted for imports and converted).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use npyz::{DType, Endianness, TypeChar, TypeStr, WriterBuilder};

use super::files::{open_error, remove_if_exists, rename_into_place, tmp_path, write_atomic};
use crate::{Error, Result};

/// Element types a dataset array may have on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyDtype {
    /// `<f4`, the native format of datasets.
    F4,
    /// `<f8`, accepted for imported maps and converted to f32 on reading.
    F8,
}

impl NpyDtype {
    fn size(self) -> usize {
        match self {
            NpyDtype::F4 => 4,
            NpyDtype::F8 => 8,
        }
    }

    pub fn descr(self) -> &'static str {
        match self {
            NpyDtype::F4 => "<f4",
            NpyDtype::F8 => "<f8",
        }
    }
}

/// Reads a `.npy` file row by row (a row = one index of the outermost axis), converting to f32.
///
/// `open` checks everything that can be checked without reading pixels: magic and header, dtype (`<f4`, or `<f8`
/// with [`NpyReader::converted`] set), C order, rank ≥ 1, and that the file holds exactly the bytes the header
/// promises (a truncated file is reported here, not as a confusing end-of-file later).
#[derive(Debug)]
pub struct NpyReader {
    path: PathBuf,
    shape: Vec<usize>,
    dtype: NpyDtype,
    data_offset: u64,
    reader: BufReader<File>,
    next_row: usize,
    bytes: Vec<u8>,
}

/// Counts bytes consumed by the header parser, to find where the data starts.
struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

impl NpyReader {
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| open_error(path, e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut counting = Counting {
            inner: &mut file,
            n: 0,
        };
        let header = npyz::NpyHeader::from_reader(&mut counting).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::format(path, "truncated: the file ends inside the .npy header")
            } else {
                Error::format(path, format!("not a valid .npy file: {e}"))
            }
        })?;
        let data_offset = counting.n;
        let dtype = check_dtype(path, &header.dtype())?;
        if header.order() != npyz::Order::C {
            return Err(Error::format(
                path,
                "fortran_order = True, expected False (C order); save with numpy.ascontiguousarray",
            ));
        }
        let shape: Vec<usize> = header.shape().iter().map(|&d| d as usize).collect();
        if shape.is_empty() {
            return Err(Error::format(
                path,
                "a 0-d (scalar) array, expected an array of maps",
            ));
        }
        // Checked: a corrupt header may declare more elements than a u64 counts.
        let expected = shape
            .iter()
            .try_fold(dtype.size() as u64, |a, &d| a.checked_mul(d as u64));
        let found = file_len.saturating_sub(data_offset);
        if expected != Some(found) {
            let (what, bytes) = match expected {
                Some(e) if found > e => ("unexpected trailing bytes", e.to_string()),
                Some(e) => ("truncated", e.to_string()),
                None => ("truncated", "more than 2^64".to_string()),
            };
            return Err(Error::format(
                path,
                format!(
                    "{what}: header declares shape {shape:?} '{}' = {bytes} data bytes, file holds {found}",
                    dtype.descr()
                ),
            ));
        }
        file.seek(SeekFrom::Start(data_offset))
            .map_err(|e| Error::io(path, e))?;
        Ok(NpyReader {
            path: path.to_path_buf(),
            shape,
            dtype,
            data_offset,
            reader: BufReader::with_capacity(1 << 20, file),
            next_row: 0,
            bytes: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> NpyDtype {
        self.dtype
    }

    /// Whether values are converted from `<f8` (a warning for imported datasets).
    pub fn converted(&self) -> bool {
        self.dtype == NpyDtype::F8
    }

    /// Number of rows (outermost dimension).
    pub fn rows(&self) -> usize {
        self.shape[0]
    }

    /// Values per row.
    pub fn row_len(&self) -> usize {
        self.shape[1..].iter().product()
    }

    /// Moves to row `i`, so the next [`NpyReader::read_row`] returns it.
    pub fn seek_row(&mut self, i: usize) -> Result<()> {
        if i > self.rows() {
            return Err(Error::format(
                &self.path,
                format!("row {i} out of range (the file has {} rows)", self.rows()),
            ));
        }
        let pos = self.data_offset + (i * self.row_len() * self.dtype.size()) as u64;
        self.reader
            .seek(SeekFrom::Start(pos))
            .map_err(|e| Error::io(&self.path, e))?;
        self.next_row = i;
        Ok(())
    }

    /// Reads the next row into `out` (resized to [`NpyReader::row_len`]).
    pub fn read_row(&mut self, out: &mut Vec<f32>) -> Result<()> {
        self.read_rows(1, out)
    }

    /// Reads the next `k` rows into `out` (resized to k · row_len).
    pub fn read_rows(&mut self, k: usize, out: &mut Vec<f32>) -> Result<()> {
        if self.next_row + k > self.rows() {
            return Err(Error::format(
                &self.path,
                format!(
                    "reading rows {}..{} past the end ({} rows)",
                    self.next_row,
                    self.next_row + k,
                    self.rows()
                ),
            ));
        }
        let n = k * self.row_len();
        self.bytes.resize(n * self.dtype.size(), 0);
        self.reader
            .read_exact(&mut self.bytes)
            .map_err(|e| Error::io(&self.path, e))?;
        out.clear();
        match self.dtype {
            NpyDtype::F4 => out.extend(
                self.bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            NpyDtype::F8 => out.extend(self.bytes.chunks_exact(8).map(|b| {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            })),
        }
        self.next_row += k;
        Ok(())
    }

    /// Reads every remaining row.
    pub fn read_all(mut self) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        let k = self.rows() - self.next_row;
        self.read_rows(k, &mut out)?;
        Ok(out)
    }
}

/// Accepts `<f4` and `<f8` only; everything else is named in the error.
fn check_dtype(path: &Path, dtype: &DType) -> Result<NpyDtype> {
    let accepted = |ts: &TypeStr| {
        let little = ts.endianness() == Endianness::Little;
        match (ts.type_char(), ts.size_field(), little) {
            (TypeChar::Float, 4, true) => Some(NpyDtype::F4),
            (TypeChar::Float, 8, true) => Some(NpyDtype::F8),
            _ => None,
        }
    };
    let (found, descr) = match dtype {
        DType::Plain(ts) => (accepted(ts), ts.to_string()),
        other => (None, other.descr()),
    };
    found.ok_or_else(|| {
        Error::format(
            path,
            format!("dtype '{descr}', expected '<f4' (or '<f8', converted with a warning)"),
        )
    })
}

/// Reads a whole `.npy` file as f32 with its shape.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<f32>, Vec<usize>)> {
    let r = NpyReader::open(path)?;
    let shape = r.shape().to_vec();
    Ok((r.read_all()?, shape))
}

/// Streams an f32 `.npy` file of known shape to disk: the header goes first, rows are appended in order, and the
/// file only appears under its final name (atomic rename from `NAME.tmp`) once every row has been written.
/// Dropping an unfinished writer deletes the temporary file.
pub struct NpyF32Writer {
    path: PathBuf,
    tmp: PathBuf,
    inner: Option<npyz::NpyWriter<f32, BufWriter<File>>>,
    row_len: usize,
    rows: usize,
    written: usize,
}

impl NpyF32Writer {
    /// Starts `path` (written as `path.tmp` until [`NpyF32Writer::finish`]) for an array of `shape`, rank ≥ 1.
    pub fn create(path: &Path, shape: &[usize]) -> Result<Self> {
        let tmp = tmp_path(path);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let f4: TypeStr = "<f4"
            .parse()
            .map_err(|e| Error::format(path, format!("npyz rejected '<f4': {e}")))?;
        let shape64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let inner = npyz::WriteOptions::new()
            .dtype(DType::Plain(f4))
            .shape(&shape64)
            .writer(BufWriter::with_capacity(1 << 20, file))
            .begin_nd()
            .map_err(|e| Error::io(&tmp, e))?;
        Ok(NpyF32Writer {
            path: path.to_path_buf(),
            tmp,
            inner: Some(inner),
            row_len: shape.iter().skip(1).product(),
            rows: shape.first().copied().unwrap_or(1),
            written: 0,
        })
    }

    /// Appends one row (`row_len` values).
    pub fn push_row(&mut self, row: &[f32]) -> Result<()> {
        if row.len() != self.row_len || self.written >= self.rows {
            return Err(Error::format(
                &self.path,
                format!(
                    "row {} of {} values; the array takes {} rows of {}",
                    self.written,
                    row.len(),
                    self.rows,
                    self.row_len
                ),
            ));
        }
        let Some(w) = self.inner.as_mut() else {
            return Err(Error::format(&self.path, "writer already finished"));
        };
        w.extend(row.iter().copied())
            .map_err(|e| Error::io(&self.tmp, e))?;
        self.written += 1;
        Ok(())
    }

    /// Completes the file (checks the row count, flushes, syncs) and renames it into place.
    pub fn finish(mut self) -> Result<()> {
        let Some(w) = self.inner.take() else {
            return Err(Error::format(&self.path, "writer already finished"));
        };
        let done = w
            .finish()
            .map_err(|e| Error::io(&self.tmp, e))
            .and_then(|()| rename_into_place(&self.tmp, &self.path));
        if done.is_err() {
            remove_if_exists(&self.tmp);
        }
        done
    }
}

impl Drop for NpyF32Writer {
    fn drop(&mut self) {
        if let Some(w) = self.inner.take() {
            drop(w);
            remove_if_exists(&self.tmp);
        }
    }
}

/// An element type [`write_npy`] can store: a little-endian IEEE float.
pub trait NpyElement: Copy {
    /// numpy's type string of the element (`descr` in the header).
    const DESCR: &'static str;
    /// Appends the element's little-endian bytes to `out`.
    fn put_le_bytes(self, out: &mut Vec<u8>);
}

impl NpyElement for f32 {
    const DESCR: &'static str = "<f4";
    fn put_le_bytes(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyElement for f64 {
    const DESCR: &'static str = "<f8";
    fn put_le_bytes(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// Writes a whole array (C order, `shape` of rank ≥ 1 holding `data.len()` values) atomically as a version 1.0
/// `.npy` file: samples, logs and metrics for numpy users.
pub fn write_npy<T: NpyElement>(path: &Path, data: &[T], shape: &[usize]) -> Result<()> {
    write_atomic(path, &npy_bytes(path, data, shape)?)
}

/// The bytes of the `.npy` file [`write_npy`] writes (`path` only names the array in errors).
pub fn npy_bytes<T: NpyElement>(path: &Path, data: &[T], shape: &[usize]) -> Result<Vec<u8>> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if n != Some(data.len()) || shape.is_empty() {
        return Err(Error::Shape {
            what: path.display().to_string(),
            got: shape.to_vec(),
            expected: format!("a shape of rank ≥ 1 holding {} values", data.len()),
        });
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_txt}, }}",
        T::DESCR
    );
    // NPY v1.0: magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, '\n'.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + std::mem::size_of_val(data));
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        v.put_le_bytes(&mut bytes);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_row_access() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let data: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32 * 0.5 - 3.0).collect();
        write_npy(&p, &data, &[2, 3, 4]).unwrap();
        assert!(!tmp_path(&p).exists());
        let (back, shape) = read_npy_f32(&p).unwrap();
        assert_eq!(shape, vec![2, 3, 4]);
        assert_eq!(back, data);
        let mut r = NpyReader::open(&p).unwrap();
        r.seek_row(1).unwrap();
        let mut row = Vec::new();
        r.read_row(&mut row).unwrap();
        assert_eq!(row, data[12..]);
        assert!(r.read_row(&mut row).is_err());
    }

    #[test]
    fn unfinished_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.npy");
        {
            let mut w = NpyF32Writer::create(&p, &[2, 2]).unwrap();
            w.push_row(&[1.0, 2.0]).unwrap();
            assert!(w.push_row(&[1.0]).is_err());
        }
        assert!(!p.exists() && !tmp_path(&p).exists());
        let w = NpyF32Writer::create(&p, &[2, 2]).unwrap();
        assert!(w.finish().is_err(), "too few rows must not produce a file");
        assert!(!p.exists());
    }
}
