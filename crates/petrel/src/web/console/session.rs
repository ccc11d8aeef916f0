//! The console's logins: a session per successful login, named by a random token in a cookie
//! (`Secure`, `HttpOnly`, `SameSite=Strict`, path `/queue`), with its own random CSRF token
//! that every form of the console carries and every POST must give back. Sessions live in
//! this process's memory: they end after 30 idle minutes, 12 hours in all, at logout, or when
//! petrel restarts. Failed logins are counted per client address: after 5 within 5 minutes,
//! that address must wait.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie's name.
pub const COOKIE: &str = "petrel_console";
/// How long a session lasts without a request.
const IDLE: Duration = Duration::from_secs(30 * 60);
/// How long a session lasts at most.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The most sessions kept; the oldest goes when another login needs room.
const MAX_SESSIONS: usize = 1000;
/// Failed logins from one address allowed within `FAILURE_WINDOW`.
const MAX_FAILURES: u32 = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);

/// One logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    /// The user's password hash at login: the session ends when it is no longer theirs.
    pub hash: String,
    /// What the console's forms carry as `csrf`.
    pub csrf: String,
    started: Instant,
    seen: Instant,
}

/// The sessions and the failed-login counts.
#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Sessions {
    /// A new session for `user`, whose password hash is `hash`: its cookie token.
    ///
    /// # Errors
    /// No random bytes could be read.
    pub fn start(&self, user: &str, hash: &str) -> std::io::Result<String> {
        let token = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| is_live(s, now));
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.started)
                .map(|(t, _)| t.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            token.clone(),
            Session {
                user: user.to_owned(),
                hash: hash.to_owned(),
                csrf,
                started: now,
                seen: now,
            },
        );
        Ok(token)
    }

    /// The session a `Cookie` field names, when it is live (and now seen again).
    pub fn find(&self, cookie: Option<&str>) -> Option<Session> {
        let token = cookie_value(cookie?, COOKIE)?;
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        let session = sessions.get_mut(token)?;
        if !is_live(session, now) {
            sessions.remove(token);
            return None;
        }
        session.seen = now;
        Some(session.clone())
    }

    /// Ends the session a `Cookie` field names.
    pub fn end(&self, cookie: Option<&str>) {
        if let Some(token) = cookie.and_then(|c| cookie_value(c, COOKIE)) {
            lock(&self.sessions).remove(token);
        }
    }

    /// Whether `peer` may try to log in now; if so the try is counted as a failure at once
    /// (under one lock, so guesses sent in parallel are counted too) until `succeeded`.
    pub fn try_login(&self, peer: IpAddr) -> bool {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        failures.retain(|_, (_, first)| now.duration_since(*first) <= FAILURE_WINDOW);
        let entry = failures.entry(peer).or_insert((0, now));
        if entry.0 >= MAX_FAILURES {
            return false;
        }
        entry.0 += 1;
        true
    }

    /// Forgets the failures of `peer` after a successful login.
    pub fn succeeded(&self, peer: IpAddr) {
        lock(&self.failures).remove(&peer);
    }
}

/// The `Set-Cookie` value that starts a session.
pub fn set_cookie(token: &str) -> String {
    format!(
        "{COOKIE}={token}; Path=/queue; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that ends one.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/queue; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
}

fn is_live(session: &Session, now: Instant) -> bool {
    now.duration_since(session.seen) < IDLE && now.duration_since(session.started) < LIFETIME
}

/// The value of cookie `name` in a `Cookie` field (RFC 6265 §5.4: `a=b; c=d`).
fn cookie_value<'a>(field: &'a str, name: &str) -> Option<&'a str> {
    field
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
}

/// 32 random bytes from the kernel, in hex.
fn random_hex() -> std::io::Result<String> {
    let bytes: [u8; 32] = crate::users::random_bytes()?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal without telling how much matched by how long it took (the API's comparison).
pub use crate::web::api::same;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_and_ends_at_logout() {
        let sessions = Sessions::default();
        let token = sessions.start("admin", "$argon2id$h").unwrap();
        assert_eq!(token.len(), 64);
        let field = format!("other=1; {COOKIE}={token}; more=2");
        let session = sessions.find(Some(&field)).unwrap();
        assert_eq!(session.user, "admin");
        assert_eq!(session.csrf.len(), 64);
        assert_ne!(session.csrf, token);
        // Another token: its first character changed (to one it is not: a random token
        // starts with "0" one time in sixteen).
        let other = if token.starts_with('0') { '1' } else { '0' };
        assert!(
            sessions
                .find(Some(&format!("{COOKIE}={other}{}", &token[1..])))
                .is_none()
        );
        assert!(sessions.find(Some("other=1")).is_none());
        assert!(sessions.find(None).is_none());
        sessions.end(Some(&field));
        assert!(sessions.find(Some(&field)).is_none());
    }

    #[test]
    fn five_failed_logins_make_an_address_wait() {
        let sessions = Sessions::default();
        let (peer, other): (IpAddr, IpAddr) =
            ("127.0.0.2".parse().unwrap(), "::1".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert!(sessions.try_login(peer));
        }
        assert!(!sessions.try_login(peer));
        assert!(sessions.try_login(other));
        sessions.succeeded(peer);
        assert!(sessions.try_login(peer));
    }

    #[test]
    fn the_cookie_is_secure_http_only_and_strict() {
        let cookie = set_cookie("abc");
        for part in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/queue"] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert!(clear_cookie().contains("Max-Age=0"));
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
    }
}
