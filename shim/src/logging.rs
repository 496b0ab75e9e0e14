//! Logging in runc's formats.
//!
//! containerd's runc shim passes `--log FILE --log-format json` and, when a
//! command fails, reads the last `"level":"error"` line's `msg` to report the
//! error to the user; runc writes logrus JSON lines
//! (`{"level":"error","msg":"...","time":"..."}`) or logrus text lines
//! (`time="..." level=error msg="..."`). brig writes the same.
//!
//! Nothing secret is ever logged: tokens are removed from the spec before any
//! stage logs it, and errors never carry token text.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// runc's `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

struct RuncFormat(LogFormat);

#[derive(Default)]
struct Fields {
    message: String,
    extra: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.extra, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.extra, " {}={value:?}", field.name());
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl<S, N> FormatEvent<S, N> for RuncFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let msg = format!("{}{}", fields.message, fields.extra);
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let level = level_name(event.metadata().level());
        match self.0 {
            LogFormat::Json => {
                let line = serde_json::json!({ "level": level, "msg": msg, "time": time });
                writeln!(w, "{line}")
            }
            LogFormat::Text => {
                writeln!(w, "time={time:?} level={level} msg={msg:?}")
            }
        }
    }
}

/// Installs the global logger. Without `--log`, logs go to stderr.
pub fn init(log: Option<&Path>, format: LogFormat, level: Level) -> std::io::Result<()> {
    // libcontainer logs from inside the container too, where stderr is the
    // job's: keep it to errors unless debugging.
    let lib_level = if level >= Level::DEBUG { level } else { Level::ERROR };
    let filter =
        Targets::new().with_default(level).with_target("libcontainer", lib_level).with_target("libcgroups", lib_level);
    let layer = tracing_subscriber::fmt::layer().event_format(RuncFormat(format));
    match log {
        Some(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            let layer = layer.with_writer(Mutex::new(file));
            let _ = tracing_subscriber::registry().with(layer.with_filter(filter)).try_init();
        }
        None => {
            let layer = layer.with_writer(std::io::stderr);
            let _ = tracing_subscriber::registry().with(layer.with_filter(filter)).try_init();
        }
    }
    Ok(())
}

/// Writes the final error of a failed command the way runc does: to the log
/// (as an `error` line) and, when the log is not stderr, also to stderr.
pub fn report_error(message: &str, logging_to_file: bool) {
    tracing::error!("{message}");
    if logging_to_file {
        eprintln!("brig: {message}");
    }
}
