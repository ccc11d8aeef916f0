//! petrel-metrics: the process's counters and gauges, kept and rendered for `/metrics` by
//! prometheus-client in the OpenMetrics text format (which Prometheus reads; issue 19, item 1).
//!
//! Shared by `server` and `delivery` so that both count without depending on each other. One
//! registry per process (`registry()`); a sample is a name, a few labels and a value. Names,
//! types and help texts are listed in `DESCRIPTIONS`; the sample names are those petrel has
//! always exported (a counter's ends in `_total`; OpenMetrics names its family without that
//! suffix on the `# TYPE` and `# HELP` lines). Label values are escaped by the encoder, so a
//! value a peer chose (a reply code it sent) cannot break the format.

pub mod replies;

use std::collections::HashMap;
use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// Every metric petrel exports: name, type, help.
pub const DESCRIPTIONS: &[(&str, &str, &str)] = &[
    (
        SMTP_CONNECTIONS,
        "counter",
        "SMTP sessions accepted, by listener protocol.",
    ),
    (
        SMTP_CONNECTIONS_OPEN,
        "gauge",
        "SMTP sessions open now, by listener protocol.",
    ),
    (
        SMTP_TLS_SESSIONS,
        "counter",
        "TLS handshakes completed, inbound (STARTTLS or implicit TLS) and outbound (STARTTLS to a remote MX).",
    ),
    (
        SMTP_REPLIES_SENT,
        "counter",
        "Replies petrel sent to SMTP clients, by basic and enhanced code.",
    ),
    (
        BARE_NEWLINE_REFUSALS,
        "counter",
        "Commands and messages refused for a bare CR or LF (SMTP smuggling defence).",
    ),
    (
        MESSAGES_RECEIVED,
        "counter",
        "Messages accepted into the queue (250 after fsync), by source.",
    ),
    (
        REMOTE_REPLIES_RECEIVED,
        "counter",
        "Replies petrel received from remote SMTP and LMTP servers, by basic and enhanced code.",
    ),
    (
        RECIPIENT_OUTCOMES,
        "counter",
        "Delivery attempts per recipient, by transport and result (delivered, deferred, bounced).",
    ),
    (
        DELIVERY_PROBLEMS,
        "counter",
        "Recipients not delivered by an attempt, by verdict (deferred, failed) and typed cause (dns-servfail, connect-refused, reply-rcpt, ...).",
    ),
    (
        BOUNCES_QUEUED,
        "counter",
        "Delivery status notifications (bounces, delay and success notices) queued.",
    ),
    (
        QUEUE_MESSAGES,
        "gauge",
        "Messages in the queue (active and held).",
    ),
    (
        QUEUE_OLDEST_AGE,
        "gauge",
        "Age in seconds of the oldest queued message.",
    ),
    (
        QUEUE_CLAIMS,
        "counter",
        "Messages this node claimed for delivery from the shared PostgreSQL queue.",
    ),
    (
        QUEUE_LEASE_TAKEOVERS,
        "counter",
        "Claims of messages whose lease another node held and let run out (that node stopped or lost the database).",
    ),
    (
        QUEUE_LEASES_LOST,
        "counter",
        "Changes this node did not make because its lease on the message had run out and another node had taken it over (fencing).",
    ),
    (
        QUEUE_LEASE_RENEWAL_FAILURES,
        "counter",
        "Lease renewals of this node that failed (the database could not be reached).",
    ),
    (
        QUEUE_DATABASE_OPERATIONS,
        "counter",
        "Queue operations on PostgreSQL, by operation.",
    ),
    (
        QUEUE_DATABASE_MICROSECONDS,
        "counter",
        "Time spent in queue operations on PostgreSQL, in microseconds, by operation (divide by the operations for the mean latency).",
    ),
    (
        QUEUE_DATABASE_ERRORS,
        "counter",
        "Queue operations on PostgreSQL that failed for a database or connection error, by operation.",
    ),
    (
        RATE_LIMITED,
        "counter",
        "Sessions and commands refused by the per-client limits, by limit.",
    ),
    (
        SCREEN_REFUSALS,
        "counter",
        "Refusals by the door of port 25, by check (pregreet, dnsbl, dbl, fcrdns, helo, pipelining, non_smtp, unknown_sender_domain, unknown_recipient_domain, greylist, milter).",
    ),
    (
        TLS_HANDSHAKES_RUNNING,
        "gauge",
        "Inbound TLS handshakes running now (at most limits.max_tls_handshakes).",
    ),
    (
        TLS_HANDSHAKES_WAITING,
        "gauge",
        "Inbound TLS handshakes waiting for a slot now (limits.max_tls_handshakes reached).",
    ),
    (
        DATA_MEMORY,
        "gauge",
        "Octets of message content the SMTP sessions hold now, read and not yet stored (bounded by limits.max_data_memory).",
    ),
    (
        DATA_MEMORY_REFUSALS,
        "counter",
        "Messages refused with 452 4.3.1 while their data was read, because the message data in flight reached limits.max_data_memory (messages refused from their start while it is reached are counted in the replies sent).",
    ),
];

pub const SMTP_CONNECTIONS: &str = "petrel_smtp_connections_total";
pub const SMTP_CONNECTIONS_OPEN: &str = "petrel_smtp_connections_open";
pub const SMTP_TLS_SESSIONS: &str = "petrel_tls_sessions_total";
pub const SMTP_REPLIES_SENT: &str = "petrel_smtp_replies_sent_total";
pub const BARE_NEWLINE_REFUSALS: &str = "petrel_bare_newline_refusals_total";
pub const MESSAGES_RECEIVED: &str = "petrel_messages_received_total";
pub const REMOTE_REPLIES_RECEIVED: &str = "petrel_remote_replies_received_total";
pub const RECIPIENT_OUTCOMES: &str = "petrel_recipient_deliveries_total";
pub const DELIVERY_PROBLEMS: &str = "petrel_delivery_problems_total";
pub const BOUNCES_QUEUED: &str = "petrel_dsn_queued_total";
pub const QUEUE_MESSAGES: &str = "petrel_queue_messages";
pub const QUEUE_OLDEST_AGE: &str = "petrel_queue_oldest_message_age_seconds";
pub const QUEUE_CLAIMS: &str = "petrel_queue_claims_total";
pub const QUEUE_LEASE_TAKEOVERS: &str = "petrel_queue_lease_takeovers_total";
pub const QUEUE_LEASES_LOST: &str = "petrel_queue_leases_lost_total";
pub const QUEUE_LEASE_RENEWAL_FAILURES: &str = "petrel_queue_lease_renewal_failures_total";
pub const QUEUE_DATABASE_OPERATIONS: &str = "petrel_queue_database_operations_total";
pub const QUEUE_DATABASE_MICROSECONDS: &str = "petrel_queue_database_microseconds_total";
pub const QUEUE_DATABASE_ERRORS: &str = "petrel_queue_database_errors_total";
pub const RATE_LIMITED: &str = "petrel_rate_limited_total";
pub const SCREEN_REFUSALS: &str = "petrel_screen_refusals_total";
pub const DATA_MEMORY: &str = "petrel_data_memory_bytes";
pub const TLS_HANDSHAKES_RUNNING: &str = "petrel_tls_handshakes_running";
pub const TLS_HANDSHAKES_WAITING: &str = "petrel_tls_handshakes_waiting";
pub const DATA_MEMORY_REFUSALS: &str = "petrel_data_memory_refusals_total";

/// The labels of a sample, in the order the caller gives them.
type Labels = Vec<(&'static str, String)>;

/// The process's samples.
#[derive(Debug)]
pub struct Registry {
    exposition: prometheus_client::registry::Registry,
    counters: HashMap<&'static str, Family<Labels, Counter>>,
    gauges: HashMap<&'static str, Family<Labels, Gauge>>,
}

/// The registry of this process.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

fn labels(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Default for Registry {
    /// Every metric of `DESCRIPTIONS`, the label-free ones at 0 from the start (a series that
    /// exists before it first moves lets rate() work from the start).
    fn default() -> Registry {
        let mut registry = Registry {
            exposition: prometheus_client::registry::Registry::default(),
            counters: HashMap::new(),
            gauges: HashMap::new(),
        };
        for (name, kind, help) in DESCRIPTIONS {
            // The encoder ends each help text with a full stop of its own.
            let help = help.strip_suffix('.').unwrap_or(help);
            if *kind == "counter" {
                let family = Family::<Labels, Counter>::default();
                if labels_free(name) {
                    drop(family.get_or_create(&Vec::new()));
                }
                // The encoder puts the suffix back on the samples.
                let family_name = name.strip_suffix("_total").unwrap_or(name);
                registry
                    .exposition
                    .register(family_name, help, family.clone());
                registry.counters.insert(name, family);
            } else {
                let family = Family::<Labels, Gauge>::default();
                if labels_free(name) {
                    drop(family.get_or_create(&Vec::new()));
                }
                registry.exposition.register(*name, help, family.clone());
                registry.gauges.insert(name, family);
            }
        }
        registry
    }
}

impl Registry {
    /// Adds `delta` to the sample `name{labels}` (a gauge may go down; a counter only up).
    pub fn add(&self, name: &'static str, labels_given: &[(&'static str, &str)], delta: i64) {
        if let Some(family) = self.counters.get(name) {
            if let Ok(delta) = u64::try_from(delta) {
                family.get_or_create(&labels(labels_given)).inc_by(delta);
            }
        } else if let Some(family) = self.gauges.get(name) {
            family.get_or_create(&labels(labels_given)).inc_by(delta);
        }
    }

    /// Adds one to a counter.
    pub fn increment(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels_given: &[(&'static str, &str)], value: i64) {
        if let Some(family) = self.gauges.get(name) {
            family.get_or_create(&labels(labels_given)).set(value);
        }
    }

    /// The current value of one sample (0 when never touched).
    pub fn value(&self, name: &'static str, labels_given: &[(&'static str, &str)]) -> i64 {
        let labels = labels(labels_given);
        if let Some(family) = self.counters.get(name) {
            family.get(&labels).map_or(0, |counter| {
                i64::try_from(counter.get()).unwrap_or(i64::MAX)
            })
        } else {
            self.gauges
                .get(name)
                .and_then(|family| family.get(&labels).map(|gauge| gauge.get()))
                .unwrap_or(0)
        }
    }

    /// Every sample in the OpenMetrics text format, each metric under its HELP and TYPE
    /// lines, ending with `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.exposition).is_err() {
            // Writing into a String cannot fail; say so rather than serve half a page.
            return "# EOF\n".to_owned();
        }
        out
    }
}

/// The Content-Type of `render()`'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Metrics that have no labels, rendered as 0 before their first sample.
fn labels_free(name: &str) -> bool {
    [
        BARE_NEWLINE_REFUSALS,
        BOUNCES_QUEUED,
        QUEUE_MESSAGES,
        QUEUE_OLDEST_AGE,
    ]
    .contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_escaped_labels() {
        let registry = Registry::default();
        registry.increment(SMTP_REPLIES_SENT, &[("code", "250"), ("enhanced", "2.0.0")]);
        registry.increment(SMTP_REPLIES_SENT, &[("code", "250"), ("enhanced", "2.0.0")]);
        registry.increment(SMTP_REPLIES_SENT, &[("code", "5\"0\n0"), ("enhanced", "")]);
        registry.add(SMTP_CONNECTIONS_OPEN, &[("protocol", "smtp")], 1);
        registry.add(SMTP_CONNECTIONS_OPEN, &[("protocol", "smtp")], -1);
        let text = registry.render();
        assert!(
            text.contains("# TYPE petrel_smtp_replies_sent counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP petrel_smtp_replies_sent Replies petrel sent to SMTP clients, by basic and enhanced code.\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.contains("petrel_smtp_replies_sent_total{code=\"250\",enhanced=\"2.0.0\"} 2\n")
        );
        assert!(
            text.contains("petrel_smtp_replies_sent_total{code=\"5\\\"0\\n0\",enhanced=\"\"} 1\n")
        );
        assert!(text.contains("petrel_smtp_connections_open{protocol=\"smtp\"} 0\n"));
        assert!(text.contains("petrel_bare_newline_refusals_total 0\n"));
        assert_eq!(
            registry.value(SMTP_REPLIES_SENT, &[("code", "250"), ("enhanced", "2.0.0")]),
            2
        );
    }
}
