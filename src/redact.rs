//! Keeps secrets out of the dependencies' logs: IronRDP and sspi log through `tracing`, and
//! sspi 0.23 puts the CredSSP credentials it is about to encrypt (the password, as UTF-16
//! bytes) into DEBUG/TRACE events and span fields.
//!
//! With the `redact-dependency-logs` feature (on by default), every call this crate makes into
//! those crates runs under a scoped `tracing` dispatcher (set by [`future`] around the drivers'
//! and the session's futures, and by [`scoped`] around synchronous calls) that forwards their events to the
//! `log` facade — as `tracing`'s own `log` bridge would — except sspi's below INFO, and never
//! span fields. Without the feature, calls go straight through.

/// Runs `future` with the redacting forwarder as the thread's `tracing` dispatcher during
/// each of its polls, as `tracing`'s `WithSubscriber` does: the entry points of the drivers
/// and the session wrap their whole work in it, so that every call into IronRDP or sspi made
/// inside (a new channel's too) is redacted without doing anything.
///
/// The future is boxed: these are the connection drivers, run a few dozen times per
/// connection, and a pointer keeps the callers' futures small (debug builds copy futures
/// through every layer, and the connection's would outgrow a small thread's stack).
pub(crate) async fn future<F: std::future::Future>(future: F) -> F::Output {
    let mut future = Box::pin(future);
    std::future::poll_fn(|cx| scoped(|| future.as_mut().poll(cx))).await
}

/// Runs `f` (a synchronous call into IronRDP or sspi) with the redacting forwarder as the
/// thread's `tracing` dispatcher.
#[cfg(feature = "redact-dependency-logs")]
pub(crate) fn scoped<T>(f: impl FnOnce() -> T) -> T {
    use std::sync::OnceLock;
    static DISPATCH: OnceLock<tracing::Dispatch> = OnceLock::new();
    let dispatch = DISPATCH.get_or_init(|| tracing::Dispatch::new(forward::ToLog::default()));
    tracing::dispatcher::with_default(dispatch, f)
}

/// Without the feature: a plain call.
#[cfg(not(feature = "redact-dependency-logs"))]
pub(crate) fn scoped<T>(f: impl FnOnce() -> T) -> T {
    f()
}

#[cfg(feature = "redact-dependency-logs")]
mod forward {
    use std::fmt::{self, Write as _};
    use std::sync::atomic::{AtomicU64, Ordering};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    /// A `tracing` subscriber that writes events as `log` records and drops what may hold
    /// secrets.
    #[derive(Default)]
    pub(super) struct ToLog {
        next_span: AtomicU64,
    }

    fn to_log_level(level: &Level) -> log::Level {
        match *level {
            Level::ERROR => log::Level::Error,
            Level::WARN => log::Level::Warn,
            Level::INFO => log::Level::Info,
            Level::DEBUG => log::Level::Debug,
            _ => log::Level::Trace,
        }
    }

    /// sspi's events below INFO may carry credentials (its `#[instrument(ret)]` functions
    /// return the encoded TSCredentials); they are dropped.
    fn redacted(meta: &Metadata<'_>) -> bool {
        let target = meta.target();
        (target == "sspi" || target.starts_with("sspi::")) && *meta.level() > Level::INFO
    }

    impl Subscriber for ToLog {
        fn enabled(&self, meta: &Metadata<'_>) -> bool {
            if meta.is_span() {
                // Spans are created (so that instrumented code runs as usual) but their fields
                // are never written anywhere.
                return true;
            }
            !redacted(meta)
                && log::logger().enabled(
                    &log::Metadata::builder()
                        .level(to_log_level(meta.level()))
                        .target(meta.target())
                        .build(),
                )
        }

        fn new_span(&self, _span: &Attributes<'_>) -> Id {
            Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
        }

        fn record(&self, _span: &Id, _values: &Record<'_>) {}

        fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

        fn event(&self, event: &Event<'_>) {
            let meta = event.metadata();
            if redacted(meta) {
                return;
            }
            let mut text = Text::default();
            event.record(&mut text);
            log::logger().log(
                &log::Record::builder()
                    .level(to_log_level(meta.level()))
                    .target(meta.target())
                    .module_path(meta.module_path())
                    .file(meta.file())
                    .line(meta.line())
                    .args(format_args!("{}", text.0))
                    .build(),
            );
        }

        fn enter(&self, _span: &Id) {}

        fn exit(&self, _span: &Id) {}
    }

    /// An event's message followed by its other fields as `name=value`, like `tracing`'s
    /// own `log` bridge writes them.
    #[derive(Default)]
    struct Text(String);

    impl Visit for Text {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, "{value:?}");
            } else {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }

        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "message" {
                self.0.push_str(value);
            } else {
                let _ = write!(self.0, " {}={value}", field.name());
            }
        }
    }
}
