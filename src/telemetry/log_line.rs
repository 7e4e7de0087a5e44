//! The `pretty` log line when it goes to a file or a pipe (no terminal, no colours): the same
//! text as tracing-subscriber's default formatter, written directly.
//!
//! Every request writes one line, so its cost is every request's: the default formatter paints
//! each part through an ANSI `Style` even with colours off, and formats every field through
//! `write!` with nested arguments. Measured in the default configuration, the line cost about
//! 16,500 instructions per request, this one about a third of that (BENCHMARKS.md, issue 18).
//! A terminal keeps tracing-subscriber's own coloured formatter.
//!
//! The text: `2026-12-03T14:37:43.832257Z  INFO span{fields}: message key=value key="text"`.
//! Strings are quoted as `{:?}` quotes them (printable ASCII is copied as is, anything else goes
//! through `Debug`), other values print as `{:?}`, fields named `log.*` are left out and a
//! leading `r#` is dropped, as the default formatter does.

use std::fmt;

use tracing::field::{Field, Visit};

use super::trace_context::{LOG_SPAN, REQUEST_IDS};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter: timestamp, level, the spans in scope with their fields, the fields.
pub struct PlainLine;

/// The field formatter, for events and for the spans' stored fields.
pub struct PlainFields;

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        SystemTime.format_time(&mut writer)?;
        writer.write_str(match *event.metadata().level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                seen = true;
                writer.write_str(span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    writer.write_char('{')?;
                    writer.write_str(fields.as_str())?;
                    writer.write_char('}')?;
                }
                writer.write_char(':')?;
            }
            if seen {
                writer.write_char(' ')?;
            }
        } else {
            // What the log span would have shown (the middleware makes none for plain lines).
            REQUEST_IDS
                .try_with(|ids| match ids {
                    Some(ids) => write!(
                        writer,
                        "{LOG_SPAN}{{trace_id=\"{}\" span_id={}}}: ",
                        ids.trace_id, ids.span_id
                    ),
                    None => Ok(()),
                })
                .unwrap_or(Ok(()))?;
        }
        ctx.format_fields(writer.by_ref(), event)?;
        writer.write_char('\n')
    }
}

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'writer> {
    writer: Writer<'writer>,
    empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Writes the separator and `name=`; false for a field the line leaves out.
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name.starts_with("log.") || self.result.is_err() {
            return false;
        }
        if !std::mem::take(&mut self.empty) {
            self.result = self.writer.write_char(' ');
        }
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = self
                .result
                .and_then(|()| self.writer.write_str(name))
                .and_then(|()| self.writer.write_char('='));
        }
        true
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.key(field) {
            return;
        }
        self.result = if field.name() == "message" {
            self.writer.write_str(value)
        } else if value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
        {
            // What `{:?}` writes for printable ASCII, without its per-character escaping.
            self.writer.write_char('"').and_then(|()| {
                self.writer
                    .write_str(value)
                    .and_then(|()| self.writer.write_char('"'))
            })
        } else {
            write!(self.writer, "{value:?}")
        };
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            self.result = write!(self.writer, "{value}");
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            self.result = write!(self.writer, "{value}");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            self.result = self.writer.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            self.result = write!(self.writer, "{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// The same events through tracing-subscriber's default formatter (no colours) and ours.
    fn both(emit: impl Fn()) -> (String, String) {
        let run = |plain: bool| {
            let out = Captured::default();
            let layer = tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(false)
                .with_writer(out.clone());
            let subscriber = tracing_subscriber::registry();
            if plain {
                let layer = layer.event_format(PlainLine).fmt_fields(PlainFields);
                tracing::subscriber::with_default(subscriber.with(layer), &emit);
            } else {
                tracing::subscriber::with_default(subscriber.with(layer), &emit);
            }
            let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
            // The timestamps differ; the rest must not.
            text.lines()
                .map(|l| l.split_once("Z ").map_or(l, |(_, rest)| rest).to_owned())
                .collect::<Vec<_>>()
                .join("\n")
        };
        (run(false), run(true))
    }

    #[test]
    fn lines_read_as_the_default_formatters() {
        let (default, plain) = both(|| {
            let span = tracing::info_span!("request", trace_id = "4bf92f35", span_id = %7u8);
            let _entered = span.enter();
            tracing::info!(
                method = "POST",
                status = 200u16,
                latency_ms = 3.5,
                model = Some("llama"),
                absent = None::<&str>,
                negative = -3i64,
                ok = true,
                quoted = "say \"hi\"\n",
                accent = "café",
                r#type = "x",
                "request completed"
            );
            tracing::warn!(error = %"upstream refused", "a warning with {} args", 2);
            tracing::error!("no fields");
        });
        assert_eq!(plain, default);
        assert!(
            plain.contains(
                "INFO request{trace_id=\"4bf92f35\" span_id=7}: request completed method=\"POST\""
            ),
            "{plain}"
        );
    }

    #[test]
    fn a_request_without_a_log_span_reads_as_one_with_it() {
        use opentelemetry::trace::SpanId;

        use super::super::trace_context::RequestIds;

        let ids = RequestIds {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: SpanId::from(0xb7ad_6b71_6920_3331),
        };
        let (default, _) = both(|| {
            let span = tracing::info_span!(
                LOG_SPAN,
                trace_id = ids.trace_id.as_str(),
                span_id = %ids.span_id
            );
            let _entered = span.enter();
            tracing::info!(status = 200u16, "request completed");
        });
        let (_, plain) = both(|| {
            REQUEST_IDS.sync_scope(Some(ids.clone()), || {
                tracing::info!(status = 200u16, "request completed");
            });
        });
        assert_eq!(plain, default);
        assert_eq!(
            plain,
            " INFO request{trace_id=\"0af7651916cd43dd8448eb211c80319c\" span_id=b7ad6b7169203331}: request completed status=200"
        );
    }

    #[test]
    fn outside_any_span_the_line_has_no_scope() {
        let (default, plain) = both(|| tracing::info!(answer = 42u64, "started"));
        assert_eq!(plain, default);
        assert_eq!(plain, " INFO started answer=42");
    }
}
