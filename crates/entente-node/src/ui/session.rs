//! Server-side sessions of the web interface.
//!
//! A session is created by signing in with a user's API token and lives in this process's
//! memory: a node restart, or a second node process behind the same address, signs everyone
//! out (documented in docs/ui.md). The browser holds only the session id, in a cookie that is
//! `HttpOnly; SameSite=Strict; Path=/ui` (and `Secure` behind TLS).
//!
//! The session keeps the token, not a principal: every request authenticates it again with
//! the store's authenticator, so principals are still made only by authenticators, and a token
//! revoked by the operator ends its sessions at the next click.
//!
//! Each session has its own CSRF token, written into every form and compared in constant
//! time on every POST.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq as _;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "entente_session";
/// A session ends this long after sign-in, however active.
pub(crate) const ABSOLUTE: Duration = Duration::from_secs(8 * 3600);
/// A session ends after this long without a request.
pub(crate) const IDLE: Duration = Duration::from_secs(30 * 60);
/// Most sessions held at once (only a valid token makes one); the oldest goes first.
const MAX_SESSIONS: usize = 10_000;

struct Entry {
    token: String,
    csrf: String,
    created: Instant,
    last: Instant,
}

/// What a request learns of its session.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// The session id (the cookie's value).
    pub(crate) id: String,
    /// The API token it was opened with (authenticated again on every request).
    pub(crate) token: String,
    /// The session's CSRF token.
    pub(crate) csrf: String,
}

/// The sessions of this process.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
    idle: Option<Duration>,
}

/// 32 random bytes, hex.
fn random_hex() -> Option<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).ok()?;
    Some(hex::encode(b))
}

impl Sessions {
    /// Sessions whose idle timeout is `idle` (tests shorten it).
    #[cfg(test)]
    pub(crate) fn with_idle(idle: Duration) -> Sessions {
        Sessions { map: Mutex::default(), idle: Some(idle) }
    }

    fn idle(&self) -> Duration {
        self.idle.unwrap_or(IDLE)
    }

    /// A new session for `token` (already authenticated by the caller), or `None` if the
    /// system's random source fails.
    pub(crate) fn create(&self, token: &str, now: Instant) -> Option<Session> {
        let (id, csrf) = (random_hex()?, random_hex()?);
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let idle = self.idle();
        map.retain(|_, e| live(e, now, idle));
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.last).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let entry = Entry { token: token.to_owned(), csrf: csrf.clone(), created: now, last: now };
        map.insert(id.clone(), entry);
        Some(Session { id, token: token.to_owned(), csrf })
    }

    /// The live session `id`, its idle clock reset; an expired one is removed.
    pub(crate) fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let idle = self.idle();
        let entry = map.get_mut(id)?;
        if !live(entry, now, idle) {
            map.remove(id);
            return None;
        }
        entry.last = now;
        Some(Session { id: id.to_owned(), token: entry.token.clone(), csrf: entry.csrf.clone() })
    }

    /// Ends session `id`.
    pub(crate) fn remove(&self, id: &str) {
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(id);
    }
}

fn live(e: &Entry, now: Instant, idle: Duration) -> bool {
    now.saturating_duration_since(e.created) < ABSOLUTE
        && now.saturating_duration_since(e.last) < idle
}

/// Whether `given` is the session's CSRF token (constant time in the token's bytes).
pub(crate) fn csrf_ok(session: &Session, given: Option<&str>) -> bool {
    let Some(given) = given else { return false };
    let (a, b) = (session.csrf.as_bytes(), given.as_bytes());
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The session id a request's `Cookie` headers carry.
pub(crate) fn cookie_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value that holds session `id` (`secure` behind TLS).
pub(crate) fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={}{}",
        ABSOLUTE.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that clears the session cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_end_on_sign_out() {
        let s = Sessions::with_idle(Duration::from_secs(60));
        let t0 = Instant::now();
        let a = s.create("tok", t0).unwrap();
        assert_eq!(s.get(&a.id, t0 + Duration::from_secs(59)).unwrap().token, "tok");
        // The idle clock was reset at 59 s.
        assert!(s.get(&a.id, t0 + Duration::from_secs(100)).is_some());
        assert!(s.get(&a.id, t0 + Duration::from_secs(200)).is_none());
        let b = s.create("tok", t0).unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.csrf, b.csrf);
        s.remove(&b.id);
        assert!(s.get(&b.id, t0).is_none());
    }

    #[test]
    fn sessions_end_after_eight_hours_however_active() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let a = s.create("tok", t0).unwrap();
        let mut t = t0;
        while t < t0 + ABSOLUTE - Duration::from_secs(600) {
            t += Duration::from_secs(600);
            assert!(s.get(&a.id, t).is_some());
        }
        assert!(s.get(&a.id, t0 + ABSOLUTE).is_none());
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        let s = Sessions::default();
        let a = s.create("tok", Instant::now()).unwrap();
        assert!(csrf_ok(&a, Some(&a.csrf.clone())));
        assert!(!csrf_ok(&a, None));
        assert!(!csrf_ok(&a, Some("")));
        assert!(!csrf_ok(&a, Some(&a.csrf[..63])));
        let mut wrong = a.csrf.clone().into_bytes();
        wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
        assert!(!csrf_ok(&a, Some(std::str::from_utf8(&wrong).unwrap())));
    }

    #[test]
    fn the_cookie_is_read_only_in_its_exact_form() {
        let mut h = axum::http::HeaderMap::new();
        let id = "a".repeat(64);
        h.insert(axum::http::header::COOKIE, format!("x=1; {COOKIE}={id}").parse().unwrap());
        assert_eq!(cookie_of(&h), Some(id));
        h.insert(axum::http::header::COOKIE, format!("{COOKIE}=zz").parse().unwrap());
        assert_eq!(cookie_of(&h), None);
        assert!(set_cookie("x", true).ends_with("; Secure"));
        assert!(set_cookie("x", false).contains("HttpOnly; SameSite=Strict; Path=/ui"));
    }
}
