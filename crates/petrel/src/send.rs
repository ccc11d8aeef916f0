//! `petrel send`: sends one message to a server and prints the transcript.

/// Arguments of `petrel send`.
#[derive(Debug, clap::Args)]
pub struct SendArgs {}

/// Runs the command.
///
/// # Errors
/// What went wrong, for the user.
pub fn run(_args: &SendArgs) -> Result<(), String> {
    Err("not implemented yet".into())
}
