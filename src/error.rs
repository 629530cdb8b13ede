//! The one error type of annal. Every failure carries a stable [`ErrorCode`]
//! that survives the trip to JavaScript (`err.code`) and a message that says
//! what to do about it.

use std::fmt;

/// Stable, documented error codes. Their string forms are part of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The input breaks a documented rule; nothing was written.
    Validation,
    /// `expectedVersion` did not match the aggregate's current version.
    VersionConflict,
    /// IndexedDB (or another backend) failed; nothing was written.
    Storage,
    /// The browser refused the write because the origin is out of quota.
    QuotaExceeded,
    /// Stored data failed an integrity check.
    Tampered,
    /// The store was closed, by the app or by a newer version of the app.
    Closed,
    /// The database was written by an incompatible (usually newer) layout.
    Schema,
    /// A bug in annal itself. The instance should be reloaded.
    Internal,
    /// The passphrase, key or recovery secret does not unlock this store.
    BadKey,
    /// The store is encrypted and locked: unlock it first.
    Locked,
    /// The sync server cannot be reached now; events wait in the outbox.
    Offline,
    /// The sync server refused the token, even a fresh one.
    Unauthorized,
    /// The sync server's history changed under a verified checkpoint.
    LedgerFork,
    /// The sync server speaks no protocol version this annal speaks.
    SchemaIncompatible,
    /// `cancelSync()` stopped a sync pass; nothing was lost.
    Cancelled,
}

impl ErrorCode {
    /// The string form, as seen by JavaScript in `err.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Validation => "ANNAL_VALIDATION",
            ErrorCode::VersionConflict => "ANNAL_VERSION_CONFLICT",
            ErrorCode::Storage => "ANNAL_STORAGE",
            ErrorCode::QuotaExceeded => "ANNAL_QUOTA_EXCEEDED",
            ErrorCode::Tampered => "ANNAL_TAMPERED",
            ErrorCode::Closed => "ANNAL_CLOSED",
            ErrorCode::Schema => "ANNAL_SCHEMA",
            ErrorCode::Internal => "ANNAL_INTERNAL",
            ErrorCode::BadKey => "ANNAL_BAD_KEY",
            ErrorCode::Locked => "ANNAL_LOCKED",
            ErrorCode::Offline => "ANNAL_OFFLINE",
            ErrorCode::Unauthorized => "ANNAL_UNAUTHORIZED",
            ErrorCode::LedgerFork => "ANNAL_LEDGER_FORK",
            ErrorCode::SchemaIncompatible => "ANNAL_SCHEMA_INCOMPATIBLE",
            ErrorCode::Cancelled => "ANNAL_CANCELLED",
        }
    }

    /// Every code, for exhaustive tests of the JavaScript mapping.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::Validation,
        ErrorCode::VersionConflict,
        ErrorCode::Storage,
        ErrorCode::QuotaExceeded,
        ErrorCode::Tampered,
        ErrorCode::Closed,
        ErrorCode::Schema,
        ErrorCode::Internal,
        ErrorCode::BadKey,
        ErrorCode::Locked,
        ErrorCode::Offline,
        ErrorCode::Unauthorized,
        ErrorCode::LedgerFork,
        ErrorCode::SchemaIncompatible,
        ErrorCode::Cancelled,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An annal error: a code, an actionable message, and where it applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong and what to do about it.
    pub message: String,
    /// The offending input field, such as `payload.items[2].dose`.
    pub field: Option<String>,
    /// The `device_seq` of the event concerned.
    pub device_seq: Option<u64>,
    /// The `event_id` of the event concerned.
    pub event_id: Option<String>,
}

/// Result with an annal [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a code and a message, and no location.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            field: None,
            device_seq: None,
            event_id: None,
        }
    }

    /// `ANNAL_VALIDATION` for one field.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Validation, message).with_field(field)
    }

    /// `ANNAL_STORAGE`.
    pub fn storage(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Storage, message)
    }

    /// `ANNAL_TAMPERED` at one `device_seq`.
    pub fn tampered(device_seq: u64, message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Tampered, message).with_device_seq(device_seq)
    }

    /// `ANNAL_INTERNAL`: a broken invariant inside annal.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(
            ErrorCode::Internal,
            format!(
                "{}. This is a bug in annal; reload the page and report it.",
                message.into()
            ),
        )
    }

    /// Names the offending field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Names the event's `device_seq`.
    pub fn with_device_seq(mut self, device_seq: u64) -> Self {
        self.device_seq = Some(device_seq);
        self
    }

    /// Names the event's id.
    pub fn with_event_id(mut self, event_id: impl Into<String>) -> Self {
        self.event_id = Some(event_id.into());
        self
    }

    /// Prefixes the field path, as a nested validator returns to its caller.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = Some(match self.field.take() {
            Some(inner) if inner.is_empty() => prefix.to_string(),
            Some(inner) if inner.starts_with('[') => format!("{prefix}{inner}"),
            Some(inner) => format!("{prefix}.{inner}"),
            None => prefix.to_string(),
        });
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}
