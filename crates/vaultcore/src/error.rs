//! The one error type of the core. The Python layer maps each variant to a class of `vaultd.errors`.

use std::fmt;

/// Everything the core can refuse. Messages never contain key material or data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A malformed argument: a key or nonce of the wrong length, sizes out of range, lists of unequal length.
    InvalidArgument(String),
    /// Data failed an integrity check (AEAD tag, re-derived chunk id). `index` names the batch item.
    Integrity { index: Option<usize>, what: &'static str },
    /// A usage bound is reached (e.g. too many messages sealed under one key with random nonces).
    Exhausted(String),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// The same error, naming the batch item it came from.
    pub fn at(self, i: usize) -> Self {
        match self {
            Error::Integrity { what, .. } => Error::Integrity { index: Some(i), what },
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("item {i}: {m}")),
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => f.write_str(m),
            Error::Integrity { index: Some(i), what } => write!(f, "item {i}: {what}"),
            Error::Integrity { index: None, what } => f.write_str(what),
            Error::Exhausted(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<ring::error::Unspecified> for Error {
    fn from(_: ring::error::Unspecified) -> Self {
        Error::Integrity { index: None, what: "authentication failed (AEAD tag mismatch)" }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
