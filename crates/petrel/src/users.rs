//! `petrel user add NAME | remove NAME | list`: manage `auth.users_file`, or the directory's
//! users when `local.store = "postgres"` (directory.rs). The password is read from standard
//! input (a terminal or a pipe), never from the command line; it is stored as an argon2id PHC
//! hash with a random salt.

use std::io::BufRead;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};
use clap::Subcommand;
use petrel_pgqueue::directory::Change;
use petrel_server::users::UserStore;

use crate::config::{self, Source};

/// The user subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Add a user, or change their password.
    Add { name: String },
    /// Remove a user.
    Remove { name: String },
    /// The users' names.
    List,
}

/// Runs a user command.
///
/// # Errors
/// A sentence for the operator.
pub fn run(source: &Source, command: &UserCommand) -> Result<(), String> {
    let config = config::load(source)?;
    if let UserCommand::Add { name } = command {
        check_name(name)?;
    }
    if let Some(store) = crate::directory::open(&config)? {
        return match command {
            UserCommand::Add { name } => crate::directory::change(
                &store,
                Change::SetUser {
                    name: name.clone(),
                    hash: hash_password(&read_password()?)?,
                },
            ),
            UserCommand::Remove { name } => {
                crate::directory::change(&store, Change::RemoveUser(name.clone()))
            }
            UserCommand::List => {
                let directory = store.load().map_err(|e| format!("the directory: {e}"))?;
                for (name, _) in directory.users {
                    println!("{name}");
                }
                Ok(())
            }
        };
    }
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
        UserCommand::List => {
            for (name, _) in &entries {
                println!("{name}");
            }
            return Ok(());
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

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
        return Err(format!(
            "{name:?}: a user name cannot be empty or hold ':' or spaces"
        ));
    }
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
    let salt: [u8; 16] = random_bytes().map_err(|e| format!("cannot read random bytes: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// `N` random bytes from the kernel (salts, session and CSRF tokens).
///
/// # Errors
/// /dev/urandom cannot be read.
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes)
}
