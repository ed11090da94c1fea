//! Device selection: `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when this build has it and a GPU answers, else CPU).

use candle_core::Device;

use crate::{Error, Result};

/// A parsed device request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    Cpu,
    Cuda(usize),
    Auto,
}

/// Parses `cpu`, `cuda`, `cuda:N` or `auto`.
pub fn parse_device(s: &str) -> Result<DeviceRequest> {
    match s {
        "cpu" => Ok(DeviceRequest::Cpu),
        "auto" => Ok(DeviceRequest::Auto),
        "cuda" | "gpu" => Ok(DeviceRequest::Cuda(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(DeviceRequest::Cuda)
            .ok_or_else(|| {
                Error::Device(format!(
                    "unknown device '{s}' (expected cpu, cuda, cuda:N or auto)"
                ))
            }),
    }
}

/// Whether this binary was built with candle's CUDA backend (`--features cuda`).
pub const fn cuda_built() -> bool {
    cfg!(feature = "cuda")
}

/// Opens the requested device. `cuda` in a CPU-only build is an error that says how to build with CUDA.
pub fn open_device(s: &str) -> Result<Device> {
    match parse_device(s)? {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Cuda(n) => {
            if !cuda_built() {
                return Err(Error::Device(format!(
                    "device '{s}' requested, but this build has no CUDA support; rebuild with \
                     `cargo build --release --features cuda` (needs the CUDA toolkit, nvcc on PATH)"
                )));
            }
            Device::new_cuda(n)
                .map_err(|e| Error::Device(format!("cannot open CUDA device {n}: {e}")))
        }
        DeviceRequest::Auto => {
            if cuda_built() {
                if let Ok(d) = Device::new_cuda(0) {
                    return Ok(d);
                }
            }
            Ok(Device::Cpu)
        }
    }
}

/// A short human-readable name (`cpu`, `cuda:0`).
pub fn device_name(d: &Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_cpu_build_errors() {
        assert_eq!(parse_device("cuda:1").unwrap(), DeviceRequest::Cuda(1));
        assert!(parse_device("cuda:x").is_err());
        assert!(matches!(open_device("cpu").unwrap(), Device::Cpu));
        if !cuda_built() {
            let msg = open_device("cuda").unwrap_err().to_string();
            assert!(msg.contains("--features cuda"), "{msg}");
            assert!(matches!(open_device("auto").unwrap(), Device::Cpu));
        }
    }
}
