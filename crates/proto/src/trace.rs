//! Trace fields: the `Received:` header a receiving server prepends (RFC 5321 §4.4, RFC 3848
//! "with" values, RFC 6531 §3.7) and the RFC 5322 §3.3 date they carry.
//!
//! Pure: the caller passes the time. Peer-supplied text (the EHLO name) is reduced to safe
//! characters so it can never fold or end the header.

/// Formats `unix_seconds` as an RFC 5322 date-time in UTC, e.g. `Sat, 28 Nov 2026 15:22:49 +0000`.
pub fn rfc5322_date(unix_seconds: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_seconds.div_euclid(86_400);
    let seconds_of_day = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month_name = MONTHS[(month - 1).clamp(0, 11) as usize];
    format!(
        "{weekday}, {day} {month_name} {year} {:02}:{:02}:{:02} +0000",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

/// `YYYY-MM-DD` (UTC) of a Unix time, e.g. for files named by day.
pub fn iso_date(unix_seconds: i64) -> String {
    let (year, month, day) = civil_from_days(unix_seconds.div_euclid(86_400));
    format!("{year:04}-{month:02}-{day:02}")
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// What a `Received:` header says about one accepted message.
#[derive(Debug, Clone)]
pub struct ReceivedFields<'a> {
    /// The EHLO/HELO argument as the client sent it.
    pub helo: &'a str,
    /// The client's IP address.
    pub client_ip: &'a str,
    /// Our host name.
    pub by: &'a str,
    /// RFC 3848 protocol: SMTP, ESMTP, UTF8SMTP, ...
    pub with: &'a str,
    pub queue_id: &'a str,
    /// The recipient, when there is exactly one (S-TRACE-2).
    pub for_recipient: Option<&'a str>,
    pub unix_seconds: i64,
}

/// Renders the header with CR LF line ends, folded (S-TRACE-2, S-5322-1).
pub fn received_header(fields: &ReceivedFields<'_>) -> String {
    let helo = safe_token(fields.helo);
    let mut header = format!(
        "Received: from {helo} ([{}])\r\n\tby {} (petrel) with {} id {}",
        fields.client_ip, fields.by, fields.with, fields.queue_id
    );
    if let Some(recipient) = fields.for_recipient {
        header.push_str(&format!("\r\n\tfor <{}>", safe_token(recipient)));
    }
    header.push_str(&format!("; {}\r\n", rfc5322_date(fields.unix_seconds)));
    header
}

/// Renders `Return-Path: <reverse-path>` for final delivery (S-TRACE-3).
pub fn return_path_header(reverse_path: &str) -> String {
    format!("Return-Path: <{}>\r\n", safe_token(reverse_path))
}

/// Keeps printable characters (and UTF-8), replacing controls and the characters that would
/// break the header's structure.
fn safe_token(text: &str) -> String {
    text.chars()
        .take(255)
        .map(|c| {
            if c.is_control() || matches!(c, '(' | ')' | ';' | '<' | '>') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Counts `Received:` header fields in the header section, for loop detection (S-DATA-12).
pub fn count_received(message: &[u8]) -> usize {
    let mut count = 0;
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:") {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_879_369),
            "Sat, 28 Nov 2026 15:22:49 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn s_trace_2_received_header() {
        let header = received_header(&ReceivedFields {
            helo: "client\r\n(evil)",
            client_ip: "127.0.0.1",
            by: "mx.example.org",
            with: "ESMTP",
            queue_id: "ABC",
            for_recipient: Some("a@example.org"),
            unix_seconds: 0,
        });
        assert_eq!(
            header,
            "Received: from client___evil_ ([127.0.0.1])\r\n\tby mx.example.org (petrel) with ESMTP id ABC\r\n\tfor <a@example.org>; Thu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
    }

    #[test]
    fn counts_received_in_header_only() {
        let message = b"Received: a\r\nreceived: b\r\nSubject: x\r\n\r\nReceived: body\r\n";
        assert_eq!(count_received(message), 2);
    }
}
