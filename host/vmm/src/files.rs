//! Reading the files schedlab is given: a scenario, results to compare,
//! guest images under `SCHEDLAB_GUEST_DIR`. Every one goes through
//! [`read_bounded`], because a path can name something that is not a
//! file: a named pipe blocks `open` until a writer appears (before any
//! `--timeout` applies), `/dev/zero` never ends, a sparse file can claim a
//! gigabyte. So the file is opened without blocking, must be a regular
//! file, and its length is checked against a stated cap *before* a byte is
//! read; then at most cap + 1 bytes are read, so a file that grows while
//! it is read cannot take more either. Each error names the file, the cap
//! and the fix.

use crate::exit::{ErrorKind, Failure, Result};
use std::fs::{File, FileType, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a file is to schedlab: what messages call it, how large it may
/// be, which exit code refusing it gives, and what to do instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputFile {
    /// "scenario file", "result file", "guest image".
    pub what: &'static str,
    /// Largest length accepted, in bytes.
    pub cap: u64,
    /// The constant the cap is defined by, named in messages so a person
    /// can find it (e.g. "OPERATION_MAX_SIZE").
    pub cap_name: &'static str,
    /// `Usage` (exit 64) for files a person named, `Image` (exit 69) for
    /// guest images.
    pub kind: ErrorKind,
    /// The end of every message: what to do about it.
    pub fix: &'static str,
}

/// A length for messages: exact bytes, and the binary unit a person
/// reads when it is large.
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if n >= unit {
            let whole = n / unit;
            let tenths = (n % unit) * 10 / unit;
            return if tenths == 0 {
                format!("{n} bytes ({whole} {name})")
            } else {
                format!("{n} bytes ({whole}.{tenths} {name})")
            };
        }
    }
    format!("{n} bytes")
}

/// What a non-regular file is, for "X is a named pipe, not a regular file".
fn describe(t: &FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Read all of `path`, which must be a regular file of at most
/// `spec.cap` bytes. Never blocks on a FIFO, never reads more than
/// `spec.cap + 1` bytes, never allocates more than the file's checked
/// length (plus one byte).
pub fn read_bounded(path: &Path, spec: &InputFile) -> Result<Vec<u8>> {
    let InputFile {
        what,
        cap,
        cap_name,
        kind,
        fix,
    } = *spec;
    let cap_text = format!("the cap, {cap_name}, is {}", fmt_bytes(cap));
    let shown = path.display();
    let fail = |why: String| {
        Failure::new(
            kind,
            format!("{shown}: cannot read the {what}: {why}: {fix}"),
        )
    };
    // O_NONBLOCK: opening a FIFO for reading waits for a writer without
    // it. It changes nothing for a regular file (Linux ignores it there),
    // and anything else is refused below before a read.
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| fail(e.to_string()))?;
    // fstat of the file we opened, not stat of the path: a path swapped
    // between the two calls cannot slip a FIFO past the check.
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let is = describe(&ft);
        let why = if ft.is_dir() {
            ""
        } else {
            " (schedlab reads only regular files: a pipe or device may block or never end)"
        };
        return Err(fail(format!("it is {is}, not a regular file{why}")));
    }
    let len = meta.len();
    if len > cap {
        return Err(fail(format!("it is {}: {cap_text}", fmt_bytes(len))));
    }
    // One more byte than the cap, so a file that grew after the fstat is
    // seen to be too long rather than silently cut.
    let mut bytes = Vec::with_capacity(len as usize + 1);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > cap {
        return Err(fail(format!(
            "it grew past its cap while it was read ({cap_text})"
        )));
    }
    Ok(bytes)
}

/// [`read_bounded`], as UTF-8 text.
pub fn read_bounded_text(path: &Path, spec: &InputFile) -> Result<String> {
    let bytes = read_bounded(path, spec)?;
    String::from_utf8(bytes).map_err(|e| {
        Failure::new(
            spec.kind,
            format!(
                "{}: cannot read the {}: it is not UTF-8 text (invalid byte at offset {}): {}",
                path.display(),
                spec.what,
                e.utf8_error().valid_up_to(),
                spec.fix
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const SPEC: InputFile = InputFile {
        what: "test file",
        cap: 1000,
        cap_name: "TEST_CAP",
        kind: ErrorKind::Usage,
        fix: "give a small regular file",
    };

    fn err(path: &Path) -> Failure {
        let t = Instant::now();
        let e = read_bounded(path, &SPEC).unwrap_err();
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{} took {:?}",
            path.display(),
            t.elapsed()
        );
        assert_eq!(e.kind, ErrorKind::Usage);
        assert!(
            e.message
                .starts_with(&format!("{}: cannot read the test file: ", path.display())),
            "{e}"
        );
        assert!(e.message.ends_with(": give a small regular file"), "{e}");
        e
    }

    #[test]
    fn a_small_regular_file_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ok");
        std::fs::write(&p, vec![7u8; 1000]).unwrap();
        assert_eq!(read_bounded(&p, &SPEC).unwrap(), vec![7u8; 1000]);
        std::fs::write(&p, "héllo").unwrap();
        assert_eq!(read_bounded_text(&p, &SPEC).unwrap(), "héllo");
        std::fs::write(&p, b"ok\xff").unwrap();
        let e = read_bounded_text(&p, &SPEC).unwrap_err();
        assert!(
            e.message
                .contains("not UTF-8 text (invalid byte at offset 2)"),
            "{e}"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = err(&p);
        assert!(
            e.message
                .contains("is a named pipe (FIFO), not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn devices_and_directories_are_refused() {
        let e = err(Path::new("/dev/zero"));
        assert!(e.message.contains("is a character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = err(dir.path());
        assert!(e.message.contains("is a directory"), "{e}");
        let e = err(&dir.path().join("missing"));
        assert!(e.message.contains("No such file"), "{e}");
    }

    #[test]
    fn a_file_over_the_cap_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sparse");
        let f = File::create(&p).unwrap();
        f.set_len(1 << 30).unwrap();
        let e = err(&p);
        assert_eq!(
            e.message,
            format!(
                "{}: cannot read the test file: it is 1073741824 bytes (1 GiB): the cap, \
                 TEST_CAP, is 1000 bytes: give a small regular file",
                p.display()
            )
        );
        f.set_len(1001).unwrap();
        assert!(
            err(&p)
                .message
                .contains("is 1001 bytes: the cap, TEST_CAP,")
        );
    }

    #[test]
    fn sizes_read_as_bytes_and_binary_units() {
        assert_eq!(fmt_bytes(12), "12 bytes");
        assert_eq!(fmt_bytes(1 << 20), "1048576 bytes (1 MiB)");
        assert_eq!(fmt_bytes(1536), "1536 bytes (1.5 KiB)");
    }
}
