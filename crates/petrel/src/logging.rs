//! Log output: human-readable on a terminal, JSON lines otherwise when asked (`--log-format`),
//! always to stderr. Structured fields carry the session and queue ids.

use std::io::IsTerminal;

use clap::ValueEnum;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human on a terminal, human without colour elsewhere.
    Auto,
    Human,
    Json,
}

/// Installs the global subscriber; call once.
pub fn init(format: Format, level: tracing::Level) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false);
    let _ = match format {
        Format::Json => builder.json().try_init(),
        Format::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        Format::Auto => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}
