//! Provider-call resilience: per-phase timeouts, a retry budget and a circuit breaker per
//! provider, all inside the segment deadline.
//!
//! - **Timeouts**: every attempt runs with the configured connect, first-byte and between-bytes
//!   timeouts ([`Timeouts`]) on top of the segment deadline, so a stall is noticed while there is
//!   still time to try again. The first-byte timeout defaults to [`AUTO_FIRST_BYTE`] of the time
//!   left when the attempt starts: a slow but working recogniser keeps most of a long deadline,
//!   and a stalled one still leaves the rest for a retry.
//! - **Retries**: at most one per call, only for failures that a second try can fix (connection
//!   errors, 500/502/503/504, 429 when its `Retry-After` ends early enough, a phase timeout with
//!   time left), never past the segment deadline, and only while the role's retry budget has a
//!   token: a token bucket in which each call deposits `retry_budget_ratio` (0.2) and each retry
//!   withdraws 1, capped at [`BUDGET_CAP`] tokens, so over any window retries stay at about 20 %
//!   of calls plus that burst. Counted in thousandths, so the arithmetic is exact.
//! - **Circuit breaker**, one per provider (role + adapter + base URL): `breaker_failures`
//!   consecutive failures open it; while open, calls fail fast with
//!   [`ProviderError::Unavailable`] and make no outbound request; after `breaker_cooldown_ms`
//!   one call is let through as a probe (half-open); its success closes the breaker, its failure
//!   opens it again. A probe that never reports back is replaced after another cooldown.
//!
//! State lives in the key-value store the platform gives ([`HttpClient::kv`]), because each
//! request runs in a fresh instance; times are wall-clock milliseconds for the same reason (a
//! fresh instance's monotonic clock may start at zero). Without a store there is no breaker and
//! no retry (nothing to count the budget in). Updates are read-modify-write without a lock:
//! concurrent requests may lose an update, which only makes the counts approximate.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::http::{FetchLimits, HttpClient, HttpError, HttpRequest, HttpResponse, Timeouts};
use crate::kv::Kv;
use crate::providers::{ProviderError, ProviderResult};

#[cfg(test)]
mod fault_tests;

/// The three provider roles; each has its own retry budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Speech to text.
    Stt,
    /// Machine translation.
    Mt,
    /// Text to speech.
    Tts,
}

impl Role {
    /// `stt`, `mt` or `tts`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stt => "stt",
            Role::Mt => "mt",
            Role::Tts => "tts",
        }
    }
}

/// Most retry tokens a role can bank (the burst allowed after a quiet spell), in thousandths.
pub const BUDGET_CAP: u64 = 10_000;
/// Tokens a role starts with, in thousandths: one retry before any deposit.
pub const BUDGET_START: u64 = 1_000;
/// Cost of one retry, in thousandths of a token.
pub const RETRY_COST: u64 = 1_000;
/// A retry is not started with less than this left before the segment deadline.
pub const MIN_RETRY_TIME: Duration = Duration::from_millis(200);
/// Pause before retrying a connection error or a 5xx.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// Pause before retrying a 429 that gave no `Retry-After`.
pub const RATE_LIMIT_BACKOFF: Duration = Duration::from_millis(250);
/// Longest `Retry-After` read (longer ones never fit a segment deadline).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Share of the time left that an attempt waits for its response head when
/// `provider_first_byte_timeout_ms` is 0 (automatic), in percent.
/// High enough that a slow but working recogniser (3.6 s for a 6 s segment on a loaded 2-core
/// machine, against a 4.8 s deadline) is not cut off; low enough to leave time for a retry of a
/// fast call (MT, TTS) after a stall.
pub const AUTO_FIRST_BYTE: u32 = 80;
/// Largest state record read back from the store.
const MAX_STATE: usize = 512;

/// What the resilience layer is configured to do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Per-phase timeouts of every attempt (`first_byte: None` is automatic, see
    /// [`Policy::attempt_timeouts`]).
    pub timeouts: Timeouts,
    /// Thousandths of a token deposited per call (ratio × 1000).
    pub deposit: u64,
    /// Consecutive failures that open the breaker (0: no breaker).
    pub breaker_failures: u32,
    /// Open time before the probe, ms.
    pub cooldown_ms: u64,
}

impl Policy {
    /// From the `provider_*`, `retry_budget_ratio` and `breaker_*` variables.
    pub fn from_config(cfg: &Config) -> Self {
        let ms = |v: u64| (v > 0).then(|| Duration::from_millis(v));
        Self {
            timeouts: Timeouts {
                connect: ms(cfg.provider_connect_timeout_ms),
                first_byte: ms(cfg.provider_first_byte_timeout_ms),
                between_bytes: ms(cfg.provider_between_bytes_timeout_ms),
            },
            deposit: (cfg.retry_budget_ratio.clamp(0.0, 1.0) * 1000.0).round() as u64,
            breaker_failures: cfg.breaker_failures,
            cooldown_ms: cfg.breaker_cooldown_ms,
        }
    }
}

impl Policy {
    /// The phase timeouts of an attempt starting at `now`: the configured ones, with an
    /// automatic first-byte timeout of [`AUTO_FIRST_BYTE`] % of the time left before `deadline`.
    pub fn attempt_timeouts(&self, now: Instant, deadline: Instant) -> Timeouts {
        let auto = deadline.saturating_duration_since(now) * AUTO_FIRST_BYTE / 100;
        Timeouts {
            first_byte: Some(self.timeouts.first_byte.unwrap_or(auto)),
            ..self.timeouts
        }
    }
}

/// A provider's circuit breaker, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Breaker {
    /// Calls go through; `failures` consecutive failures so far.
    Closed {
        /// Consecutive failures.
        failures: u32,
    },
    /// Calls fail fast since `since_ms` (wall clock).
    Open {
        /// When it opened.
        since_ms: u64,
    },
    /// One probe call was let through at `probe_ms`; others fail fast until it reports.
    HalfOpen {
        /// When the probe started.
        probe_ms: u64,
    },
}

/// What the breaker lets a call do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A normal call (closed breaker).
    Call,
    /// The one probe of a half-open breaker: no retry.
    Probe,
    /// Fail fast: no outbound call.
    Reject,
}

impl Breaker {
    /// Admission at `now_ms`, and the state to store if it changes.
    pub fn admit(self, now_ms: u64, cooldown_ms: u64) -> (Admission, Option<Breaker>) {
        match self {
            Breaker::Closed { .. } => (Admission::Call, None),
            Breaker::Open { since_ms: t } | Breaker::HalfOpen { probe_ms: t }
                if now_ms < t.saturating_add(cooldown_ms) =>
            {
                (Admission::Reject, None)
            }
            _ => (
                Admission::Probe,
                Some(Breaker::HalfOpen { probe_ms: now_ms }),
            ),
        }
    }

    /// The state after a call that `failed` (a failure that counts) or succeeded.
    pub fn after(self, failed: bool, probe: bool, now_ms: u64, threshold: u32) -> Breaker {
        if !failed {
            return Breaker::Closed { failures: 0 };
        }
        match self {
            _ if probe => Breaker::Open { since_ms: now_ms },
            Breaker::Closed { failures } if failures.saturating_add(1) >= threshold => {
                Breaker::Open { since_ms: now_ms }
            }
            Breaker::Closed { failures } => Breaker::Closed {
                failures: failures + 1,
            },
            // Opened (or probing) meanwhile by another request: leave it.
            other => other,
        }
    }
}

/// Wall-clock milliseconds.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Store key of a provider's breaker: role plus a hash of the adapter name and base URL (URLs
/// are hashed so that nothing in them, such as a key in a query, is stored).
pub fn breaker_key(role: Role, provider: &str) -> String {
    let h = Sha256::digest(provider.as_bytes());
    let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("dub/v1/breaker/{}/{hex}", role.as_str())
}

/// Store key of a role's retry budget.
pub fn budget_key(role: Role) -> String {
    format!("dub/v1/budget/{}", role.as_str())
}

/// The breaker stored for `provider` (closed when absent or unreadable).
pub fn load_breaker(kv: &dyn Kv, role: Role, provider: &str) -> Breaker {
    load(kv, &breaker_key(role, provider)).unwrap_or(Breaker::Closed { failures: 0 })
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Budget {
    /// Thousandths of a token.
    milli: u64,
}

/// Retry tokens banked for `role`, in thousandths.
pub fn budget_tokens(kv: &dyn Kv, role: Role) -> u64 {
    load::<Budget>(kv, &budget_key(role)).map_or(BUDGET_START, |b| b.milli)
}

fn load<T: for<'de> Deserialize<'de>>(kv: &dyn Kv, key: &str) -> Option<T> {
    let bytes = kv.get(key).ok()??;
    if bytes.len() > MAX_STATE {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}

fn store<T: Serialize>(kv: &dyn Kv, key: &str, v: &T) {
    if let Ok(bytes) = serde_json::to_vec(v)
        && let Err(e) = kv.set(key, &bytes)
    {
        eprintln!("dub-edge: cannot store {key}: {e}");
    }
}

/// What the last outbound request of an attempt ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A response head arrived.
    Response {
        /// Status code.
        status: u16,
        /// `Retry-After` in whole seconds, if given as a delay (`Some(None)`: present but not
        /// a delay, e.g. an HTTP date, which is not honoured).
        retry_after: Option<Option<Duration>>,
        /// `Content-Type`, lower-case, at most 100 chars.
        content_type: Option<String>,
    },
    /// The transport failed.
    Failed(HttpError),
}

/// The [`HttpClient`] adapters are given inside a resilient call: applies the policy's phase
/// timeouts to every request and remembers how the last one ended.
pub struct Observed<'a, H: ?Sized> {
    http: &'a H,
    timeouts: Timeouts,
    requests: Cell<u32>,
    last: RefCell<Option<Seen>>,
}

impl<'a, H: HttpClient + ?Sized> Observed<'a, H> {
    /// Wrap `http` with these phase timeouts.
    pub fn new(http: &'a H, timeouts: Timeouts) -> Self {
        Self {
            http,
            timeouts,
            requests: Cell::new(0),
            last: RefCell::new(None),
        }
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u32 {
        self.requests.get()
    }

    /// How the last request ended.
    pub fn last(&self) -> Option<Seen> {
        self.last.borrow().clone()
    }

    /// Content type of the last response, if there was one.
    pub fn last_content_type(&self) -> Option<String> {
        match self.last() {
            Some(Seen::Response { content_type, .. }) => content_type,
            _ => None,
        }
    }
}

fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: u64 = v.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl<H: HttpClient + ?Sized> HttpClient for Observed<'_, H> {
    fn send(&self, req: &HttpRequest, limits: &FetchLimits) -> Result<HttpResponse, HttpError> {
        self.send_timed(req, limits, &Timeouts::default())
    }

    fn send_timed(
        &self,
        req: &HttpRequest,
        limits: &FetchLimits,
        timeouts: &Timeouts,
    ) -> Result<HttpResponse, HttpError> {
        let t = Timeouts {
            connect: min_opt(self.timeouts.connect, timeouts.connect),
            first_byte: min_opt(self.timeouts.first_byte, timeouts.first_byte),
            between_bytes: min_opt(self.timeouts.between_bytes, timeouts.between_bytes),
        };
        self.requests.set(self.requests.get() + 1);
        let result = self.http.send_timed(req, limits, &t);
        let seen = match &result {
            Ok(resp) => Seen::Response {
                status: resp.status,
                retry_after: resp.header("retry-after").map(parse_retry_after),
                content_type: resp
                    .header("content-type")
                    .map(|c| c.chars().take(100).collect::<String>().to_ascii_lowercase()),
            },
            Err(e) => Seen::Failed(e.clone()),
        };
        *self.last.borrow_mut() = Some(seen);
        result
    }
}

/// Whether a failed call counts against the provider's breaker: it answered badly or not at
/// all. Refusals by our own allowlist, bad input and unsupported languages do not.
fn counts_as_failure(e: &ProviderError, seen: Option<&Seen>) -> bool {
    if matches!(seen, Some(Seen::Failed(HttpError::Forbidden(_)))) {
        return false;
    }
    match e {
        ProviderError::Timeout | ProviderError::Transport(_) | ProviderError::BadResponse(_) => {
            true
        }
        ProviderError::Status(s) => *s >= 500 || *s == 429 || *s == 408,
        _ => false,
    }
}

/// How long to wait before a retry, or `None` when this failure is not retried (not
/// retryable, or the retry would not start [`MIN_RETRY_TIME`] before `deadline`).
pub fn retry_delay(seen: Option<&Seen>, now: Instant, deadline: Instant) -> Option<Duration> {
    let wait = match seen? {
        Seen::Failed(HttpError::Connect(_)) => RETRY_BACKOFF,
        Seen::Failed(HttpError::Timeout) => Duration::ZERO,
        Seen::Response {
            status: 500 | 502 | 503 | 504,
            ..
        } => RETRY_BACKOFF,
        Seen::Response {
            status: 429,
            retry_after,
            ..
        } => match retry_after {
            None => RATE_LIMIT_BACKOFF,
            Some(Some(d)) => *d,
            Some(None) => return None,
        },
        _ => return None,
    };
    let left = deadline.saturating_duration_since(now);
    (wait + MIN_RETRY_TIME <= left).then_some(wait)
}

/// Run one provider call (`attempt`, given an [`Observed`] client) under the breaker, the retry
/// budget and the phase timeouts of `cfg`. `provider` names the adapter and endpoint (breaker
/// identity); it is hashed, never stored.
pub fn call<H, T>(
    http: &H,
    cfg: &Config,
    role: Role,
    provider: &str,
    deadline: Instant,
    mut attempt: impl FnMut(&Observed<'_, H>) -> ProviderResult<T>,
) -> ProviderResult<T>
where
    H: HttpClient + ?Sized,
{
    let policy = Policy::from_config(cfg);
    let kv = http.kv();
    let bkey = breaker_key(role, provider);
    let breaker_on = policy.breaker_failures > 0 && kv.is_some();

    let mut probe = false;
    if let Some(kv) = kv.filter(|_| breaker_on) {
        let state = load_breaker(kv, role, provider);
        let (admission, next) = state.admit(now_ms(), policy.cooldown_ms);
        if let Some(next) = next {
            store(kv, &bkey, &next);
        }
        match admission {
            Admission::Reject => {
                eprintln!("dub-edge: {} breaker open: failing fast", role.as_str());
                return Err(ProviderError::Unavailable);
            }
            Admission::Probe => {
                eprintln!("dub-edge: {} breaker half-open: probing", role.as_str());
                probe = true;
            }
            Admission::Call => {}
        }
    }

    // Deposit this call's share of the retry budget.
    let bud_key = budget_key(role);
    if let Some(kv) = kv {
        let milli = (budget_tokens(kv, role) + policy.deposit).min(BUDGET_CAP);
        store(kv, &bud_key, &Budget { milli });
    }

    let obs = Observed::new(http, policy.attempt_timeouts(Instant::now(), deadline));
    let mut result = attempt(&obs);
    if let Err(e) = &result
        && !probe
        && obs.requests() > 0
        && let Some(kv) = kv
        && let Some(wait) = retry_delay(obs.last().as_ref(), Instant::now(), deadline)
    {
        let milli = budget_tokens(kv, role);
        if milli >= RETRY_COST {
            store(
                kv,
                &bud_key,
                &Budget {
                    milli: milli - RETRY_COST,
                },
            );
            eprintln!(
                "dub-edge: {} retry after {e} (wait {} ms)",
                role.as_str(),
                wait.as_millis()
            );
            std::thread::sleep(wait);
            let again = Observed::new(http, policy.attempt_timeouts(Instant::now(), deadline));
            result = attempt(&again);
            *obs.last.borrow_mut() = again.last();
            obs.requests.set(obs.requests() + again.requests());
        } else {
            eprintln!(
                "dub-edge: {} not retried: retry budget spent ({e})",
                role.as_str()
            );
        }
    }

    // Only calls that reached the network say anything about the provider.
    if let Some(kv) = kv.filter(|_| breaker_on && obs.requests() > 0) {
        let failed = result
            .as_ref()
            .err()
            .is_some_and(|e| counts_as_failure(e, obs.last().as_ref()));
        let before = load_breaker(kv, role, provider);
        let after = before.after(failed, probe, now_ms(), policy.breaker_failures);
        if after != before {
            if matches!(after, Breaker::Open { .. }) && !matches!(before, Breaker::Open { .. }) {
                eprintln!(
                    "dub-edge: {} breaker open after {}",
                    role.as_str(),
                    if probe {
                        "a failed probe"
                    } else {
                        "repeated failures"
                    }
                );
            } else if !matches!(before, Breaker::Closed { .. }) {
                eprintln!("dub-edge: {} breaker closed", role.as_str());
            }
            store(kv, &bkey, &after);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_n_failures_probes_once_after_the_cooldown() {
        let mut b = Breaker::Closed { failures: 0 };
        for i in 1..3 {
            b = b.after(true, false, 1000, 3);
            assert_eq!(b, Breaker::Closed { failures: i });
        }
        // A success resets the count.
        assert_eq!(
            b.after(false, false, 1000, 3),
            Breaker::Closed { failures: 0 }
        );
        b = b.after(true, false, 1000, 3);
        assert_eq!(b, Breaker::Open { since_ms: 1000 });
        assert_eq!(b.admit(1500, 1000), (Admission::Reject, None));
        let (a, next) = b.admit(2000, 1000);
        assert_eq!(
            (a, next),
            (Admission::Probe, Some(Breaker::HalfOpen { probe_ms: 2000 }))
        );
        let half = next.unwrap();
        // While the probe runs, everyone else fails fast; a stale probe is replaced.
        assert_eq!(half.admit(2999, 1000).0, Admission::Reject);
        assert_eq!(half.admit(3000, 1000).0, Admission::Probe);
        // The probe's result decides.
        assert_eq!(
            half.after(true, true, 2100, 3),
            Breaker::Open { since_ms: 2100 }
        );
        assert_eq!(
            half.after(false, true, 2100, 3),
            Breaker::Closed { failures: 0 }
        );
        // A failure elsewhere while open does not extend it.
        assert_eq!(b.after(true, false, 1800, 3), b);
    }

    #[test]
    fn retries_only_what_a_second_try_can_fix_and_only_inside_the_deadline() {
        let now = Instant::now();
        let dl = now + Duration::from_secs(2);
        let resp = |status: u16, ra: Option<Option<Duration>>| Seen::Response {
            status,
            retry_after: ra,
            content_type: None,
        };
        let d = |s: &Seen| retry_delay(Some(s), now, dl);
        assert_eq!(
            d(&Seen::Failed(HttpError::Connect("refused".into()))),
            Some(RETRY_BACKOFF)
        );
        assert_eq!(d(&Seen::Failed(HttpError::Timeout)), Some(Duration::ZERO));
        assert_eq!(d(&Seen::Failed(HttpError::Forbidden("x".into()))), None);
        assert_eq!(d(&Seen::Failed(HttpError::TooLarge(5))), None);
        for s in [500, 502, 503, 504] {
            assert_eq!(d(&resp(s, None)), Some(RETRY_BACKOFF), "{s}");
        }
        for s in [200, 302, 400, 401, 404, 501] {
            assert_eq!(d(&resp(s, None)), None, "{s}");
        }
        assert_eq!(d(&resp(429, None)), Some(RATE_LIMIT_BACKOFF));
        let one = Some(Some(Duration::from_secs(1)));
        assert_eq!(d(&resp(429, one)), Some(Duration::from_secs(1)));
        // Retry-After past the deadline (less the time a retry needs), or an HTTP date: no.
        assert_eq!(d(&resp(429, Some(Some(Duration::from_secs(2))))), None);
        assert_eq!(d(&resp(429, Some(None))), None);
        // A timeout at the deadline itself leaves nothing to retry in.
        let late = now + Duration::from_millis(150);
        assert_eq!(
            retry_delay(Some(&Seen::Failed(HttpError::Timeout)), now, late),
            None
        );
        assert_eq!(retry_delay(None, now, dl), None);
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            None,
            "dates are not honoured"
        );
        assert_eq!(parse_retry_after("99999999"), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn first_byte_timeout_is_fixed_or_a_share_of_the_time_left() {
        let mut cfg = crate::testutil::test_config();
        let now = Instant::now();
        let dl = now + Duration::from_secs(5);
        let t = Policy::from_config(&cfg).attempt_timeouts(now, dl);
        assert_eq!(
            t,
            Timeouts {
                connect: Some(Duration::from_secs(2)),
                first_byte: Some(Duration::from_secs(4)),
                between_bytes: Some(Duration::from_secs(2)),
            }
        );
        let later = Policy::from_config(&cfg).attempt_timeouts(now + Duration::from_secs(4), dl);
        assert_eq!(later.first_byte, Some(Duration::from_millis(800)));
        cfg.provider_first_byte_timeout_ms = 700;
        cfg.provider_connect_timeout_ms = 0;
        let t = Policy::from_config(&cfg).attempt_timeouts(now, dl);
        assert_eq!(
            (t.connect, t.first_byte),
            (None, Some(Duration::from_millis(700)))
        );
    }

    #[test]
    fn breaker_keys_hash_the_endpoint() {
        let k = breaker_key(Role::Stt, "openai http://h/?key=sk-SECRET");
        assert!(k.starts_with("dub/v1/breaker/stt/"), "{k}");
        assert!(!k.contains("SECRET") && !k.contains("http"));
        assert_ne!(k, breaker_key(Role::Stt, "openai http://other"));
        assert_ne!(k, breaker_key(Role::Mt, "openai http://h/?key=sk-SECRET"));
    }
}
