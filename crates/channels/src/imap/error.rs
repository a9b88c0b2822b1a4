//! IMAP errors fit for logs, and which of them count against one mail.

/// An IMAP error fit for logs: the server's words for NO/BAD (no mail content), never the raw
/// bytes of a response that failed to parse (they could hold mail content).
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("the server refused: {0}")]
    No(String),
    #[error("the server rejected the command: {0}")]
    Bad(String),
    #[error("cannot parse the server's response")]
    Parse,
    #[error("connection lost")]
    ConnectionLost,
    #[error("the server sent no body for a mail it still has")]
    NoBody,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

impl From<async_imap::error::Error> for ImapError {
    fn from(e: async_imap::error::Error) -> Self {
        use async_imap::error::Error as E;
        match e {
            E::No(m) => ImapError::No(m),
            E::Bad(m) => ImapError::Bad(m),
            E::Parse(_) => ImapError::Parse,
            E::ConnectionLost => ImapError::ConnectionLost,
            E::Io(e) => ImapError::from_io(e),
            other => ImapError::Other(other.to_string()),
        }
    }
}

impl ImapError {
    /// async-imap reports a response it cannot parse as an I/O error whose message quotes the
    /// whole unparsed buffer — the mail's bytes when it was a FETCH: kept out of the message.
    pub(super) fn from_io(e: std::io::Error) -> ImapError {
        if e.kind() == std::io::ErrorKind::Other && e.to_string().contains("during parsing of") {
            ImapError::Parse
        } else {
            ImapError::Io(e)
        }
    }
}

impl From<anyhow::Error> for ImapError {
    fn from(e: anyhow::Error) -> Self {
        ImapError::Other(format!("{e:#}"))
    }
}

/// Whether the server answered NO or BAD (the connection itself is fine).
pub(super) fn refused(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ImapError>(),
        Some(ImapError::No(_) | ImapError::Bad(_))
    )
}

/// Whether reading one mail failed because of that mail, the connection working: refused,
/// an answer that does not parse, or no body for a mail the folder has. A lost connection
/// or a timeout is not the mail's doing and never counts against it.
pub(super) fn unreadable(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<ImapError>(),
        Some(ImapError::No(_) | ImapError::Bad(_) | ImapError::Parse | ImapError::NoBody)
    )
}
