//! The loader's one error type: a single line that names the object and,
//! where there is one, the program and the symbol, so a user can find the
//! line of C to change without reading the loader.

use std::fmt;

/// Why an object was refused. `Display` is one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The object's name as the caller knows it (set by [`crate::load`]
    /// from the `sched_ext_ops` name when known, else "BPF object").
    pub(crate) object: String,
    pub(crate) message: String,
}

impl LoadError {
    /// The message without the object prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

impl std::error::Error for LoadError {}

/// Internal result: a message, the object prefix is added once at the top.
pub(crate) type Res<T> = Result<T, String>;

/// `Err(format!(...))` shorthand.
macro_rules! bail {
    ($($t:tt)*) => { return Err(format!($($t)*)) };
}
pub(crate) use bail;
