//! Aliases (`local.aliases`): `name: target, target` lines, as in /etc/aliases. A name is a
//! local part of every local domain (`team`), one address (`team@example.org`), or a domain's
//! catch-all (`*@example.org`). Targets are local or remote addresses, and may be aliases
//! again; expansion stops at a loop (the looping name is delivered to its own mailbox) and at
//! a depth of 10. postmaster and abuse always resolve: to their alias, else to their mailbox.
//!
//! Parses operator files: a malformed line is an error naming the line.

use std::collections::{HashMap, HashSet};

/// For an address: `Some((folder, domain, mailbox exists))` when it is one of ours.
pub type LocalLookup<'a> = dyn Fn(&str) -> Option<(String, String, bool)> + 'a;

/// How deep aliases may nest.
const MAX_DEPTH: usize = 10;

/// The alias table.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    /// Lower-case `local` or `local@domain` (or `*@domain`) to targets.
    entries: HashMap<String, Vec<String>>,
}

/// A line of the alias file that does not parse (`line N: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasesError(pub String);

impl std::fmt::Display for AliasesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AliasesError {}

impl Aliases {
    /// Parses the file's text.
    ///
    /// # Errors
    /// `line N: ...`.
    pub fn parse(text: &str) -> Result<Aliases, AliasesError> {
        Self::parse_text(text).map_err(AliasesError)
    }

    fn parse_text(text: &str) -> Result<Aliases, String> {
        let mut entries = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (name, targets) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: expected name: target, target", index + 1))?;
            let targets: Vec<String> = targets
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            let name = name.trim().to_lowercase();
            if name.is_empty() || targets.is_empty() || name.contains(char::is_whitespace) {
                return Err(format!(
                    "line {}: an alias needs a name and at least one target",
                    index + 1
                ));
            }
            entries.insert(name, targets);
        }
        Ok(Aliases { entries })
    }

    /// The targets of `folder@domain` (folder: the local part as a Maildir folder name), if an
    /// alias covers it; the catch-all only when `exists` says the mailbox itself does not.
    pub fn targets(&self, folder: &str, domain: &str, exists: bool) -> Option<&Vec<String>> {
        let domain = domain.to_lowercase();
        self.entries
            .get(&format!("{folder}@{domain}"))
            .or_else(|| self.entries.get(folder))
            .or_else(|| {
                if exists {
                    None
                } else {
                    self.entries.get(&format!("*@{domain}"))
                }
            })
    }

    /// True when no alias is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Expands `address` into final addresses. `local` says, for an address, whether it is one
    /// of ours and gives (folder, domain, mailbox exists) for it.
    pub fn expand(&self, address: &str, local: &LocalLookup<'_>) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        self.expand_into(address, local, 0, &mut seen, &mut out);
        out.dedup();
        out
    }

    fn expand_into(
        &self,
        address: &str,
        local: &LocalLookup<'_>,
        depth: usize,
        seen: &mut HashSet<String>,
        out: &mut Vec<String>,
    ) {
        let key = address.to_lowercase();
        let ours = local(address);
        let targets = ours
            .as_ref()
            .and_then(|(folder, domain, exists)| self.targets(folder, domain, *exists));
        match (targets, ours) {
            (Some(targets), Some((_, domain, _))) if depth < MAX_DEPTH && seen.insert(key) => {
                for target in targets.clone() {
                    // A bare name is a local part of the alias's own domain.
                    let target = if target.contains('@') {
                        target
                    } else {
                        format!("{target}@{domain}")
                    };
                    self.expand_into(&target, local, depth + 1, seen, out);
                }
            }
            _ => {
                if !out.iter().any(|o: &String| o.eq_ignore_ascii_case(address)) {
                    out.push(address.to_owned());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(address: &str) -> Option<(String, String, bool)> {
        let (folder, domain) = address.rsplit_once('@')?;
        (domain == "example.org")
            .then(|| (folder.to_lowercase(), domain.to_owned(), folder != "nobody"))
    }

    #[test]
    fn expands_nested_remote_catch_all_and_loops() {
        let aliases = Aliases::parse("# aliases\nteam: alice, bob@remote.example, ops\nops: carol\nloop1: loop2\nloop2: loop1\n*@example.org: catch\nabuse@example.org: dave\n").unwrap();
        assert_eq!(
            aliases.expand("Team@example.org", &local),
            [
                "alice@example.org",
                "bob@remote.example",
                "carol@example.org"
            ]
        );
        assert_eq!(
            aliases.expand("loop1@example.org", &local),
            ["loop1@example.org"]
        );
        assert_eq!(
            aliases.expand("nobody@example.org", &local),
            ["catch@example.org"]
        );
        assert_eq!(
            aliases.expand("alice@example.org", &local),
            ["alice@example.org"]
        );
        assert_eq!(
            aliases.expand("abuse@example.org", &local),
            ["dave@example.org"]
        );
        assert_eq!(
            aliases.expand("x@remote.example", &local),
            ["x@remote.example"]
        );
        let postmaster = |address: &str| {
            (address == "Postmaster")
                .then(|| ("postmaster".to_owned(), "example.org".to_owned(), true))
                .or_else(|| local(address))
        };
        let aliases = Aliases::parse("postmaster: alice\n").unwrap();
        assert_eq!(
            aliases.expand("Postmaster", &postmaster),
            ["alice@example.org"]
        );
        assert!(
            Aliases::parse("broken line")
                .unwrap_err()
                .0
                .starts_with("line 1")
        );
    }
}
