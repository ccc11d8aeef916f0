//! The users who may AUTH (RFC 4954): `auth.users_file`, one `name:hash` per line with an
//! argon2 PHC hash, and the check of a password against it.
//!
//! An unknown user costs the same argon2 work as a wrong password, so the reply and its timing
//! do not tell them apart (S-AUTH-3). The file is operator input: a malformed line is an error
//! naming its line, not a panic.

use std::collections::HashMap;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordVerifier};

/// A PHC hash of a password nobody has, verified for unknown users to spend the same time.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$ZXhhbXBsZWhhc2hleGFtcGxlaGFzaGV4YW1wbGVoYXM";

/// The users and their password hashes.
#[derive(Debug, Clone, Default)]
pub struct UserStore {
    users: HashMap<String, String>,
}

/// A line of the users file that does not parse (`line N: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersError(pub String);

impl std::fmt::Display for UsersError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsersError {}

impl UserStore {
    /// Parses the users file's text.
    ///
    /// # Errors
    /// `line N: what is wrong`.
    pub fn parse(text: &str) -> Result<UserStore, UsersError> {
        Self::parse_text(text).map_err(UsersError)
    }

    fn parse_text(text: &str) -> Result<UserStore, String> {
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: expected name:hash", index + 1))?;
            PasswordHash::new(hash)
                .map_err(|e| format!("line {}: not an argon2 PHC hash: {e}", index + 1))?;
            users.insert(name.to_owned(), hash.to_owned());
        }
        Ok(UserStore { users })
    }

    /// True when no user is configured.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks a password; slow on purpose (argon2), call from a blocking thread.
    pub fn verify(&self, username: &str, password: &str) -> bool {
        let (hash, is_known) = match self.users.get(username) {
            Some(hash) => (hash.as_str(), true),
            None => (DECOY_HASH, false),
        };
        let is_valid = PasswordHash::new(hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        is_known && is_valid
    }

    /// The stored hash of `username`: a session made with another (the password changed, or
    /// the user was removed) no longer counts.
    pub fn hash(&self, username: &str) -> Option<&str> {
        self.users.get(username).map(String::as_str)
    }

    /// The users and hashes, to write the file back.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &String)> {
        self.users.iter()
    }
}

/// True when `user` may use `sender` as MAIL FROM on submission (S-SUB-2): a user name with
/// an `@` owns that address; a bare name owns that local part at every local domain; a `+tag`
/// is allowed in both cases; the null sender is allowed.
pub fn owns_sender(
    user: &str,
    sender: &str,
    local_domains: &[String],
    delimiter: Option<&str>,
) -> bool {
    if sender.is_empty() {
        return true;
    }
    let Some((local, domain)) = sender.rsplit_once('@') else {
        return false;
    };
    let base = match delimiter.filter(|d| !d.is_empty()) {
        Some(d) => local.split_once(d).map_or(local, |(base, _)| base),
        None => local,
    };
    match user.rsplit_once('@') {
        Some((user_local, user_domain)) => {
            base.eq_ignore_ascii_case(user_local) && domain.eq_ignore_ascii_case(user_domain)
        }
        None => {
            base.eq_ignore_ascii_case(user)
                && local_domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s_sub_2_sender_ownership() {
        let domains = vec!["example.org".to_owned()];
        assert!(owns_sender(
            "alice",
            "alice@example.org",
            &domains,
            Some("+")
        ));
        assert!(owns_sender(
            "alice",
            "Alice+news@EXAMPLE.org",
            &domains,
            Some("+")
        ));
        assert!(!owns_sender(
            "alice",
            "bob@example.org",
            &domains,
            Some("+")
        ));
        assert!(!owns_sender(
            "alice",
            "alice@elsewhere.example",
            &domains,
            Some("+")
        ));
        assert!(owns_sender(
            "carol@corp.example",
            "carol@corp.example",
            &domains,
            Some("+")
        ));
        assert!(owns_sender("alice", "", &domains, None));
    }

    #[test]
    fn decoy_hash_is_a_real_hash() {
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
        assert!(!UserStore::default().verify("nobody", "anything"));
    }

    #[test]
    fn malformed_lines_named() {
        assert!(UserStore::parse(&format!("# users\nalice:{DECOY_HASH}\n")).is_ok());
        assert_eq!(
            UserStore::parse("alice").unwrap_err().0,
            "line 1: expected name:hash"
        );
        assert!(
            UserStore::parse("alice:plaintext")
                .unwrap_err()
                .0
                .starts_with("line 1: not an argon2")
        );
    }
}
