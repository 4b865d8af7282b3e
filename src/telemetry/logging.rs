//! The log format: env_logger stays the logger (its `RUST_LOG` filter syntax), with a format of
//! ours that adds the request id to every line written while a request is served.
//!
//! `LOG_FORMAT=text` (the default) is one readable line per record for a terminal;
//! `LOG_FORMAT=json` is one JSON object per line, for a log pipeline:
//! `{"time","level","target","message","request_id","fields"}` (`request_id` null outside a
//! request, `fields` the record's key-values).

use std::io::Write;

use log::kv::{Key, Value, VisitSource};
use serde_json::{Map, Value as Json};

use super::request_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("LOG_FORMAT: {other:?} is not text or json")),
        }
    }
}

/// Installs the logger: `RUST_LOG` filters (default `info`), `LOG_FORMAT` picks the format.
/// An unknown `LOG_FORMAT` is returned as an error before anything is installed.
pub fn init() -> Result<(), String> {
    let format = LogFormat::parse(&std::env::var("LOG_FORMAT").unwrap_or_default())?;
    builder(format).init();
    Ok(())
}

pub fn builder(format: LogFormat) -> env_logger::Builder {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match format {
        LogFormat::Text => builder.format(write_text),
        LogFormat::Json => builder.format(write_json),
    };
    builder
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// `2026-12-06T01:21:38.123Z INFO  axe_gateway::startup [req=…] message key=value`
fn write_text(
    buf: &mut env_logger::fmt::Formatter,
    record: &log::Record<'_>,
) -> std::io::Result<()> {
    let style = buf.default_level_style(record.level());
    write!(
        buf,
        "{} {style}{:<5}{style:#} {}",
        now(),
        record.level(),
        record.target()
    )?;
    request_id::with_current(|id| match id {
        Some(id) => write!(buf, " [req={id}]"),
        None => Ok(()),
    })?;
    write!(buf, " {}", record.args())?;
    let mut fields = TextFields(String::new());
    let _ = record.key_values().visit(&mut fields);
    writeln!(buf, "{}", fields.0)
}

struct TextFields(String);

impl<'kvs> VisitSource<'kvs> for TextFields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        use std::fmt::Write;
        let _ = write!(self.0, " {key}={value}");
        Ok(())
    }
}

fn write_json(
    buf: &mut env_logger::fmt::Formatter,
    record: &log::Record<'_>,
) -> std::io::Result<()> {
    let mut fields = JsonFields(Map::new());
    let _ = record.key_values().visit(&mut fields);
    let line = request_id::with_current(|id| {
        serde_json::json!({
            "time": now(),
            "level": record.level().as_str(),
            "target": record.target(),
            "message": record.args().to_string(),
            "request_id": id,
            "fields": Json::Object(std::mem::take(&mut fields.0)),
        })
    });
    serde_json::to_writer(&mut *buf, &line)?;
    writeln!(buf)
}

struct JsonFields(Map<String, Json>);

impl<'kvs> VisitSource<'kvs> for JsonFields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        // Numbers and booleans keep their type; everything else is its text.
        let json = if let Some(b) = value.to_bool() {
            Json::Bool(b)
        } else if let Some(n) = value.to_u64() {
            Json::from(n)
        } else if let Some(n) = value.to_i64() {
            Json::from(n)
        } else if let Some(n) = value.to_f64() {
            serde_json::Number::from_f64(n)
                .map_or_else(|| Json::String(n.to_string()), Json::Number)
        } else {
            Json::String(value.to_string())
        };
        self.0.insert(key.as_str().to_owned(), json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::kv::Source;

    #[test]
    fn log_formats_parse() {
        assert_eq!(LogFormat::parse(""), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse("JSON"), Ok(LogFormat::Json));
        assert!(LogFormat::parse("yaml").is_err());
    }

    #[test]
    fn key_values_keep_their_types_in_json() {
        let kvs: [(&str, Value<'_>); 4] = [
            ("n", Value::from(3u64)),
            ("neg", Value::from(-2i64)),
            ("ok", Value::from(true)),
            ("who", Value::from("orders")),
        ];
        let mut fields = JsonFields(Map::new());
        kvs.as_slice().visit(&mut fields).unwrap();
        assert_eq!(
            Json::Object(fields.0),
            serde_json::json!({"n": 3, "neg": -2, "ok": true, "who": "orders"})
        );
    }
}
