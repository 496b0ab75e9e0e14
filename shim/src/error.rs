//! brig's errors. Every message names what it is about: the container, the
//! file, the field.

use std::path::PathBuf;

use libcontainer::error::LibcontainerError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Id(#[from] crate::state::IdError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Launch(#[from] crate::pipeline::LaunchError),
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error("container `{0}` does not exist")]
    NotFound(String),
    #[error("container `{0}` already exists")]
    Exists(String),
    #[error("container `{id}`: {message}")]
    State { id: String, message: String },
    #[error("container `{id}`: {source}")]
    Container {
        id: String,
        #[source]
        source: LibcontainerError,
    },
    #[error("{context} `{}`: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { context, path: path.into(), source }
    }

    pub fn container(id: &str, source: LibcontainerError) -> Error {
        Error::Container { id: id.to_string(), source }
    }

    pub fn state(id: &str, message: impl Into<String>) -> Error {
        Error::State { id: id.to_string(), message: message.into() }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The full chain of causes, on one line.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cur = s.source();
    }
    msg
}
