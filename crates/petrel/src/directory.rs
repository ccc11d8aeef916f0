//! The directory: local domains, mailboxes, aliases and users (issue 19, item 6).
//!
//! `petrel domain|mailbox|alias add|remove|list` (and `petrel user`, users.rs) change them in
//! whichever store `[local] store` names: "file" edits this configuration file
//! (`local.domains`, `local.mailboxes`, keeping its comments) or the aliases file, and a
//! running petrel uses the change after SIGHUP; "postgres" changes the directory tables
//! (petrel-pgqueue's `directory`), and every node sees the change within `POLL` without a
//! restart. At start, at SIGHUP and whenever the directory's version moves, the daemon adds
//! the directory to what the files say (`apply`) and builds its settings from both.

use std::time::Duration;

use clap::Subcommand;
use petrel_pgqueue::directory::{Change, Directory, DirectoryStore};

use crate::config::{self, Config, Source};

/// How often a node asks whether the directory changed.
pub const POLL: Duration = Duration::from_secs(2);

/// `petrel domain`.
#[derive(Debug, Clone, Subcommand)]
pub enum DomainCommand {
    /// Deliver mail for a domain here.
    Add { name: String },
    /// Stop delivering mail for a domain here.
    Remove { name: String },
    /// The local domains.
    List,
}

/// `petrel mailbox`.
#[derive(Debug, Clone, Subcommand)]
pub enum MailboxCommand {
    /// A mailbox (local@domain) that exists; once any is listed, other local parts get 550 5.1.1.
    Add { address: String },
    /// A mailbox that no longer exists.
    Remove { address: String },
    /// The mailboxes listed.
    List,
}

/// `petrel alias`.
#[derive(Debug, Clone, Subcommand)]
pub enum AliasCommand {
    /// NAME (local, local@domain or *@domain) expands to the TARGETs (replacing what it had).
    Add {
        name: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Remove an alias.
    Remove { name: String },
    /// The aliases.
    List,
}

/// Adds what the directory holds to what the configuration's files say.
pub fn apply(directory: &Directory, config: &mut Config) {
    for domain in &directory.domains {
        if !config
            .local
            .domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
        {
            config.local.domains.push(domain.clone());
        }
    }
    if !directory.mailboxes.is_empty() {
        config
            .local
            .mailboxes
            .get_or_insert_with(Vec::new)
            .extend(directory.mailboxes.iter().cloned());
    }
    config.local.directory_aliases = directory
        .aliases
        .iter()
        .map(|(name, targets)| format!("{name}: {targets}\n"))
        .collect();
    config.auth.directory_users = directory
        .users
        .iter()
        .map(|(name, hash)| format!("{name}:{hash}\n"))
        .collect();
}

/// The directory store of `config`, when `local.store = "postgres"`.
///
/// # Errors
/// The database cannot be reached.
pub fn open(config: &Config) -> Result<Option<DirectoryStore>, String> {
    let Some(url) = config.directory_url() else {
        return Ok(None);
    };
    DirectoryStore::connect(url, "petrel-directory")
        .map(Some)
        .map_err(|e| format!("local.store = \"postgres\": {e}"))
}

/// `petrel domain`.
///
/// # Errors
/// A sentence for the operator.
pub fn run_domain(source: &Source, command: &DomainCommand) -> Result<(), String> {
    let config = config::load(source)?;
    let checked = |name: &str| {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if petrel_proto::address::is_domain_name(&name) {
            Ok(name)
        } else {
            Err(format!("{name:?} is not a domain name"))
        }
    };
    match (command, open(&config)?) {
        (DomainCommand::List, Some(store)) => print_list(&load(&store)?.domains),
        (DomainCommand::List, None) => print_list(&config.local.domains),
        (DomainCommand::Add { name }, Some(store)) => {
            change(&store, Change::AddDomain(checked(name)?))
        }
        (DomainCommand::Remove { name }, Some(store)) => {
            change(&store, Change::RemoveDomain(checked(name)?))
        }
        (DomainCommand::Add { name }, None) => edit_list(source, "domains", &checked(name)?, true),
        (DomainCommand::Remove { name }, None) => {
            edit_list(source, "domains", &checked(name)?, false)
        }
    }
}

/// `petrel mailbox`.
///
/// # Errors
/// A sentence for the operator.
pub fn run_mailbox(source: &Source, command: &MailboxCommand) -> Result<(), String> {
    let config = config::load(source)?;
    let checked = |address: &str| {
        let mailbox = petrel_proto::address::parse_mailbox(address)
            .map_err(|_| format!("{address:?} is not an address (local@domain)"))?;
        Ok::<_, String>(format!(
            "{}@{}",
            mailbox.local_part_content().to_lowercase(),
            mailbox.domain.to_string().to_lowercase()
        ))
    };
    match (command, open(&config)?) {
        (MailboxCommand::List, Some(store)) => print_list(&load(&store)?.mailboxes),
        (MailboxCommand::List, None) => {
            print_list(config.local.mailboxes.as_deref().unwrap_or_default())
        }
        (MailboxCommand::Add { address }, Some(store)) => {
            change(&store, Change::AddMailbox(checked(address)?))
        }
        (MailboxCommand::Remove { address }, Some(store)) => {
            change(&store, Change::RemoveMailbox(checked(address)?))
        }
        (MailboxCommand::Add { address }, None) => {
            edit_list(source, "mailboxes", &checked(address)?, true)
        }
        (MailboxCommand::Remove { address }, None) => {
            edit_list(source, "mailboxes", &checked(address)?, false)
        }
    }
}

/// `petrel alias`.
///
/// # Errors
/// A sentence for the operator.
pub fn run_alias(source: &Source, command: &AliasCommand) -> Result<(), String> {
    let config = config::load(source)?;
    let store = open(&config)?;
    if let AliasCommand::List = command {
        let lines: Vec<String> = match &store {
            Some(store) => load(store)?
                .aliases
                .iter()
                .map(|(name, targets)| format!("{name}: {targets}"))
                .collect(),
            None => read_aliases(&config)?
                .1
                .into_iter()
                .map(|line| line.trim().to_owned())
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .collect(),
        };
        return print_list(&lines);
    }
    let name = match command {
        AliasCommand::Add { name, .. } | AliasCommand::Remove { name } => name.to_lowercase(),
        AliasCommand::List => return Ok(()),
    };
    if name.is_empty() || name.contains([':', ',', '#']) || name.contains(char::is_whitespace) {
        return Err(format!(
            "{name:?}: an alias name is local, local@domain or *@domain"
        ));
    }
    let targets = match command {
        AliasCommand::Add { targets, .. } => {
            for target in targets {
                let is_address = petrel_proto::address::parse_mailbox(target).is_ok();
                let is_local = !target.is_empty()
                    && !target.contains(['@', ':', ',', '#'])
                    && !target.contains(char::is_whitespace);
                if !is_address && !is_local {
                    return Err(format!(
                        "{target:?} is not a target: give an address or a local name"
                    ));
                }
            }
            Some(targets.join(", "))
        }
        _ => None,
    };
    match (store, targets) {
        (Some(store), Some(targets)) => change(&store, Change::SetAlias { name, targets }),
        (Some(store), None) => change(&store, Change::RemoveAlias(name)),
        (None, targets) => {
            // Every line of the file, comments and blank lines kept in place.
            let (path, mut lines) = read_aliases(&config)?;
            let before = lines.len();
            lines.retain(|line| {
                let is_comment = line.trim_start().starts_with('#');
                is_comment
                    || line
                        .split_once(':')
                        .is_none_or(|(n, _)| n.trim().to_lowercase() != name)
            });
            if targets.is_none() && lines.len() == before {
                return Err(format!("no alias {name:?} in {}", path.display()));
            }
            if let Some(targets) = targets {
                lines.push(format!("{name}: {targets}"));
            }
            let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
            write_file(&path, &text)
        }
    }
}

/// The aliases file and its lines (none when it does not exist yet).
fn read_aliases(config: &Config) -> Result<(std::path::PathBuf, Vec<String>), String> {
    let path = config.local.aliases.clone().ok_or(
        "local.aliases is not set in the configuration; set it to the file that should hold the aliases (or use local.store = \"postgres\")",
    )?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    Ok((path, text.lines().map(str::to_owned).collect()))
}

/// Adds `value` to (or removes it from) the list `local.KEY` of the configuration file,
/// keeping the rest of the file as it is.
fn edit_list(source: &Source, key: &str, value: &str, is_add: bool) -> Result<(), String> {
    let Source::File(path) = source else {
        return Err(format!(
            "petrel runs on its embedded defaults: write a configuration file (or use local.store = \"postgres\") to keep local.{key}"
        ));
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut document: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let local = document
        .entry("local")
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| format!("{}: local is not a table", path.display()))?;
    let list = local
        .entry(key)
        .or_insert_with(|| toml_edit::value(toml_edit::Array::new()))
        .as_array_mut()
        .ok_or_else(|| format!("{}: local.{key} is not a list", path.display()))?;
    let position = list
        .iter()
        .position(|item| item.as_str().is_some_and(|s| s.eq_ignore_ascii_case(value)));
    match (position, is_add) {
        (Some(_), true) => {
            eprintln!("local.{key} already holds {value}");
            return Ok(());
        }
        (None, false) => return Err(format!("local.{key} does not hold {value}")),
        (None, true) => list.push(value),
        (Some(index), false) => {
            list.remove(index);
        }
    }
    // The new text must still be a configuration petrel accepts.
    let new_text = document.to_string();
    toml::from_str::<Config>(&new_text)
        .map_err(|e| format!("the change would break {}: {e}", path.display()))?;
    write_file(path, &new_text)
}

/// Replaces `path` with `text` (through a temporary file and a rename).
fn write_file(path: &std::path::Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "{} updated; a running petrel uses it after SIGHUP",
        path.display()
    );
    Ok(())
}

fn load(store: &DirectoryStore) -> Result<Directory, String> {
    store.load().map_err(|e| format!("the directory: {e}"))
}

/// Makes `what` in the directory and says so.
///
/// # Errors
/// The database cannot be written.
pub fn change(store: &DirectoryStore, what: Change) -> Result<(), String> {
    let changed = store
        .change(what)
        .map_err(|e| format!("the directory: {e}"))?;
    if changed {
        eprintln!(
            "stored in the directory; every node uses it within {} seconds",
            POLL.as_secs()
        );
    } else {
        eprintln!("the directory already said so; nothing changed");
    }
    Ok(())
}

fn print_list(items: &[String]) -> Result<(), String> {
    for item in items {
        println!("{item}");
    }
    Ok(())
}
