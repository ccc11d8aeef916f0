//! `petrel user add NAME | user remove NAME`: manage `auth.users_file`. The password is read
//! from standard input (a terminal or a pipe), never from the command line; it is stored as an
//! argon2id PHC hash with a random salt.

use std::io::BufRead;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};
use clap::Subcommand;
use petrel_server::users::UserStore;

use crate::config::{self, Source};

/// The user subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Add a user, or change their password.
    Add { name: String },
    /// Remove a user.
    Remove { name: String },
}

/// Runs a user command.
///
/// # Errors
/// A sentence for the operator.
pub fn run(source: &Source, command: &UserCommand) -> Result<(), String> {
    let config = config::load(source)?;
    let path = config
        .auth
        .users_file
        .ok_or("auth.users_file is not set in the configuration; set it to the file that should hold the users")?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    let store = UserStore::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut entries: Vec<(String, String)> = store
        .entries()
        .map(|(n, h)| (n.clone(), h.clone()))
        .collect();
    match command {
        UserCommand::Add { name } => {
            if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
                return Err(format!(
                    "{name:?}: a user name cannot be empty or hold ':' or spaces"
                ));
            }
            let hash = hash_password(&read_password()?)?;
            entries.retain(|(n, _)| n != name);
            entries.push((name.clone(), hash));
        }
        UserCommand::Remove { name } => {
            let before = entries.len();
            entries.retain(|(n, _)| n != name);
            if entries.len() == before {
                return Err(format!("no user {name:?} in {}", path.display()));
            }
        }
    }
    entries.sort();
    let mut out =
        String::from("# petrel users: name:argon2-hash (managed by `petrel user add|remove`)\n");
    for (name, hash) in entries {
        out.push_str(&format!("{name}:{hash}\n"));
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, out)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "{} updated; a running petrel uses it after SIGHUP",
        path.display()
    );
    Ok(())
}

fn read_password() -> Result<String, String> {
    eprint!("password: ");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err("empty password".into());
    }
    Ok(password)
}

fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut salt))
        .map_err(|e| format!("cannot read random bytes: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}
