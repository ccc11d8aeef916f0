//! `petrel probe ADDRESS`: the dry run of a delivery.

use crate::config::Source;

/// Arguments of `petrel probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {}

/// Runs the command.
///
/// # Errors
/// What went wrong, for the user.
pub fn run(_source: &Source, _args: &ProbeArgs) -> Result<(), String> {
    Err("not implemented yet".into())
}
