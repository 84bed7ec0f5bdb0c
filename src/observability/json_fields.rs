//! Span fields for the JSON log format, written straight into the span's buffer as a JSON object.
//!
//! tracing-subscriber's own `JsonFields` builds a map of `serde_json::Value`s (a copy of every string) for each
//! span and then serialises it; the gateway opens a span for every call, and at `info` a successful call logs
//! nothing, so that work was wasted on almost every call. [`SpanFields`] writes the same object directly, with no
//! intermediate values, collected on the stack and handed over in one write so the span's buffer is allocated once
//! at its final size (growing it byte run by byte run took six allocations per call); the JSON event formatter
//! reads it back only when an event is actually written.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::{
    field::RecordFields,
    fmt::{format::Writer, FormatFields, FormattedFields},
};

/// Formats span fields as one JSON object (`{"request_id":"…","tenant":"…"}`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SpanFields;

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut batch = Batched::new(&mut writer);
        batch.write_char('{')?;
        let mut members = Members::new(&mut batch, true);
        fields.record(&mut members);
        members.result?;
        batch.write_char('}')?;
        batch.flush()
    }

    /// Appends fields recorded later (`span.record(…)`) to the object. A field recorded twice appears twice; JSON
    /// readers keep the last, as the JSON event formatter (which parses this object with serde_json) does.
    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        if !current.fields.ends_with('}') {
            current.fields.clear();
            return self.format_fields(current.as_writer(), fields);
        }
        current.fields.pop();
        let empty = current.fields == "{";
        let result = {
            let mut writer = current.as_writer();
            let mut batch = Batched::new(&mut writer);
            let mut members = Members::new(&mut batch, empty);
            fields.record(&mut members);
            members.result.and_then(|()| batch.flush())
        };
        current.fields.push('}');
        result
    }
}

/// Collects what is written in a buffer on the stack and passes it on in as few writes as it fits in (one, for a
/// call's span).
struct Batched<'a, W: Write> {
    out: &'a mut W,
    buf: [u8; 512],
    len: usize,
}

impl<'a, W: Write> Batched<'a, W> {
    fn new(out: &'a mut W) -> Self {
        Self {
            out,
            buf: [0; 512],
            len: 0,
        }
    }

    /// Passes on what is buffered.
    fn flush(&mut self) -> fmt::Result {
        // Only whole `&str`s are ever buffered, so the bytes are UTF-8.
        let text = std::str::from_utf8(&self.buf[..self.len]).map_err(|_| fmt::Error)?;
        self.out.write_str(text)?;
        self.len = 0;
        Ok(())
    }
}

impl<W: Write> Write for Batched<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.len + s.len() > self.buf.len() {
            self.flush()?;
            if s.len() > self.buf.len() {
                return self.out.write_str(s);
            }
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

/// Writes each visited field as a `"name":value` member.
struct Members<'a, W: Write> {
    writer: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<'a, W: Write> Members<'a, W> {
    fn new(writer: &'a mut W, first: bool) -> Self {
        Self {
            writer,
            first,
            result: Ok(()),
        }
    }

    /// Writes the separator and `"name":`, then the value with `value`.
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = (|| {
            if !self.first {
                self.writer.write_char(',')?;
            }
            self.first = false;
            write_json_str(self.writer, name)?;
            self.writer.write_char(':')?;
            value(self.writer)
        })();
    }
}

impl<W: Write> Visit for Members<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| write_json_str(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            w.write_char('"')?;
            Escaping(w).write_fmt(format_args!("{value:?}"))?;
            w.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinities; serde_json writes them as null too.
        if value.is_finite() {
            self.member(field, |w| write!(w, "{value:?}"));
        } else {
            self.member(field, |w| w.write_str("null"));
        }
    }
}

/// Writes `value` as a JSON string; most values (ids, names, methods) need no escaping and are copied as they are.
fn write_json_str(writer: &mut impl Write, value: &str) -> fmt::Result {
    writer.write_char('"')?;
    if value.bytes().any(needs_escape) {
        Escaping(writer).write_str(value)?;
    } else {
        writer.write_str(value)?;
    }
    writer.write_char('"')
}

/// Bytes that cannot stand as they are inside a JSON string (`DEL` is escaped too, to keep log lines printable).
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f
}

/// A writer that escapes what passes through it for the inside of a JSON string.
struct Escaping<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Every byte that needs escaping is ASCII, so the plain runs between them are whole UTF-8 sequences.
        let mut plain = 0;
        for (i, b) in s.bytes().enumerate() {
            if !needs_escape(b) {
                continue;
            }
            self.0.write_str(&s[plain..i])?;
            match b {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                _ => write!(self.0, "\\u{b:04x}")?,
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};
    use tracing_subscriber::{fmt::MakeWriter, layer::SubscriberExt};

    use super::SpanFields;

    /// Collects what the JSON formatter writes.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// Runs `body` under the gateway's JSON format (with [`SpanFields`]) and returns the lines it logged, parsed.
    fn logged(body: impl FnOnce()) -> Vec<Value> {
        let lines = Lines::default();
        let layer = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(SpanFields)
            .with_writer(lines.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), body);
        let bytes = lines.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("every line is JSON"))
            .collect()
    }

    #[test]
    fn an_event_in_a_span_carries_the_spans_fields_as_json() {
        let lines = logged(|| {
            let span = tracing::info_span!(
                "call",
                method = "CreateSession",
                request_id = "r-1",
                user_id = Some("player-1"),
                attempts = 2u64,
                delta = -3i64,
                retried = true,
                latency_ms = 1.5f64,
                outcome = ?Some(429),
                reason = tracing::field::Empty,
            );
            let _entered = span.enter();
            tracing::warn!("call failed");
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0]["span"],
            json!({
                "name": "call",
                "method": "CreateSession",
                "request_id": "r-1",
                "user_id": "player-1",
                "attempts": 2,
                "delta": -3,
                "retried": true,
                "latency_ms": 1.5,
                "outcome": "Some(429)",
            })
        );
    }

    #[test]
    fn fields_recorded_later_join_the_object_and_the_last_value_wins() {
        let lines = logged(|| {
            let span = tracing::info_span!("call", reason = tracing::field::Empty, attempts = 1u64);
            span.record("reason", "UPSTREAM_RATE_LIMITED");
            span.record("attempts", 3u64);
            let _entered = span.enter();
            tracing::warn!("call failed");
        });
        assert_eq!(lines[0]["span"]["reason"], "UPSTREAM_RATE_LIMITED");
        assert_eq!(lines[0]["span"]["attempts"], 3);
    }

    #[test]
    fn a_span_with_no_values_yet_gets_its_first_fields_later() {
        let lines = logged(|| {
            let span = tracing::info_span!("call", reason = tracing::field::Empty);
            span.record("reason", "UPSTREAM_UNAVAILABLE");
            let _entered = span.enter();
            tracing::warn!("call failed");
        });
        assert_eq!(
            lines[0]["span"],
            json!({"name": "call", "reason": "UPSTREAM_UNAVAILABLE"})
        );
    }

    #[test]
    fn quotes_backslashes_and_control_characters_stay_inside_the_string() {
        let hostile = "a\"b\\c\nd\u{1}e\u{7f}f\t\u{e9}";
        let lines = logged(|| {
            let span = tracing::info_span!("call", user_id = hostile, debug = ?hostile);
            let _entered = span.enter();
            tracing::warn!("call failed");
        });
        assert_eq!(lines[0]["span"]["user_id"], hostile);
        assert_eq!(lines[0]["span"]["debug"], format!("{hostile:?}"));
    }

    #[test]
    fn fields_longer_than_the_stack_buffer_are_written_whole() {
        let long = "é".repeat(700);
        let lines = logged(|| {
            let span = tracing::info_span!(
                "call",
                a = "x".repeat(300).as_str(),
                b = long.as_str(),
                c = "end"
            );
            let _entered = span.enter();
            tracing::warn!("call failed");
        });
        assert_eq!(lines[0]["span"]["a"], "x".repeat(300));
        assert_eq!(lines[0]["span"]["b"], long);
        assert_eq!(lines[0]["span"]["c"], "end");
    }

    #[test]
    fn numbers_json_cannot_hold_become_null() {
        let lines = logged(|| {
            let span = tracing::info_span!("call", latency_ms = f64::NAN);
            let _entered = span.enter();
            tracing::warn!("call failed");
        });
        assert_eq!(lines[0]["span"]["latency_ms"], Value::Null);
    }
}
