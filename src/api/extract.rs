//! Extractors: the authenticated API client, JSON bodies that name the offending field, and
//! query/path errors as problem+json.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::auth::Caller;
use crate::error::Problem;
use crate::service::Actor;

/// Largest JSON body accepted on the API (unless a route's [`JsonBody`] says otherwise).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The API client that sent the request, as the authentication middleware
/// ([`super::auth::authorize`]) found it, and the request's id.
#[derive(Debug, Clone)]
pub struct ApiClient {
    caller: Caller,
    actor: Actor,
}

impl ApiClient {
    pub fn name(&self) -> &str {
        &self.caller.name
    }

    /// The caller as the service layer sees it (visibility, history).
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
}

impl FromRequest for ApiClient {
    type Error = Problem;
    type Future = std::future::Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = req.extensions().get::<Caller>().cloned();
        std::future::ready(
            caller
                .map(|caller| {
                    let request_id =
                        crate::telemetry::request_id::current().map(|r| r.as_str().to_owned());
                    ApiClient {
                        actor: Actor::client(caller.name.clone(), caller.sees_all(), request_id),
                        caller,
                    }
                })
                .ok_or_else(|| Problem::unauthorized("this route needs an API token")),
        )
    }
}

/// A JSON body parsed into `T`; errors name the field (`ttl_minutes: invalid type ...`). Bodies
/// over `LIMIT` bytes are refused with 413 before they are parsed.
pub struct JsonBody<T, const LIMIT: usize = MAX_BODY_BYTES>(pub T);

impl<T: DeserializeOwned + 'static, const LIMIT: usize> FromRequest for JsonBody<T, LIMIT> {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = json_content_type(req);
        let payload = payload.take();
        Box::pin(async move {
            if !content_type_ok {
                return Err(unsupported_media_type());
            }
            let body = read_body(payload, LIMIT).await?;
            parse_json(&body).map(JsonBody)
        })
    }
}

/// For a route that takes no body: none, or an empty JSON object. Anything else is refused as
/// an unknown field is on the routes that take one (`400` naming it), so a client never
/// believes a body it sent was used.
pub struct NoBody;

/// The members a body-less route accepts: none.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

impl FromRequest for NoBody {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = json_content_type(req);
        let payload = payload.take();
        Box::pin(async move {
            let body = read_body(payload, MAX_BODY_BYTES).await?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(NoBody);
            }
            if !content_type_ok {
                return Err(unsupported_media_type());
            }
            parse_json::<Empty>(&body).map(|_| NoBody)
        })
    }
}

fn json_content_type(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || m.ends_with("+json")
        })
}

fn unsupported_media_type() -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as Content-Type: application/json",
    )
}

/// The whole body, refused with 413 once it passes `limit` bytes.
async fn read_body(mut payload: Payload, limit: usize) -> Result<web::BytesMut, Problem> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| Problem::invalid_field("body", format!("could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Deserialises JSON, turning serde's message into a field-named problem. A string holding a
/// NUL is refused here, naming its field, as PostgreSQL cannot store one.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    // JSON can carry a NUL only as the escape `\u0000`, so most bodies skip the walk.
    if body.windows(6).any(|w| w == b"\\u0000") {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
            if let Some(field) = nul_field(&value, String::new()) {
                let field = if field.is_empty() {
                    "body".to_owned()
                } else {
                    field
                };
                return Err(Problem::invalid_field(
                    &field,
                    "must not contain a NUL character (U+0000)",
                ));
            }
        }
    }
    // serde reads a struct from a JSON array too, by position (`[true]` as `{"record": true}`);
    // every body of this API is an object, so an array is refused whole.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Problem::invalid_field("body", "must be a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return Problem::invalid_field("body", format!("is not valid JSON: {message}"));
        }
        let field = if path == "." || path.is_empty() {
            field_in_message(&message).unwrap_or_else(|| "body".to_owned())
        } else {
            path
        };
        Problem::invalid_field(&field, message)
    })
}

/// An integer member of a body. JSON Schema's `integer` is any number without a fractional
/// part, so `60.0` and `6e1` are taken as 60 (serde alone refuses them); `60.5` or a number out
/// of `T`'s range is refused, naming the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole<T>(pub T);

impl<'de, T: TryFrom<i64> + TryFrom<u64>> serde::Deserialize<'de> for Whole<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<T: TryFrom<i64> + TryFrom<u64>> serde::de::Visitor<'_> for Visit<T> {
            type Value = Whole<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a whole number that fits {}", std::any::type_name::<T>())
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Whole<T>, E> {
                T::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Whole<T>, E> {
                T::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Whole<T>, E> {
                // Within ±2^63 an integral f64 converts to i64 exactly.
                const LIMIT: f64 = 9_223_372_036_854_775_808.0;
                if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
                    if let Ok(t) = T::try_from(v as i64) {
                        return Ok(Whole(t));
                    }
                }
                Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// A struct inside a body that must be written as a JSON object: serde would otherwise read it
/// from an array by position, which [`parse_json`] refuses only for the whole body.
#[derive(Debug)]
pub struct Object<T>(pub T);

impl<T> std::ops::Deref for Object<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = Object<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Object<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// The path (`numbers[2].number`) of the first string or key in `value` holding a NUL.
fn nul_field(value: &serde_json::Value, at: String) -> Option<String> {
    match value {
        serde_json::Value::String(s) => s.contains('\0').then_some(at),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_field(v, format!("{at}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                Some(here.replace('\0', "\\u0000"))
            } else {
                nul_field(v, here)
            }
        }),
        _ => None,
    }
}

/// A query string parsed into `T` (as `web::Query`), refusing a NUL in any parameter's name or
/// value with a 400 naming it, as PostgreSQL cannot store one.
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req))
    }
}

fn parse_query<T: DeserializeOwned>(req: &HttpRequest) -> Result<Query<T>, actix_web::Error> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    if let Some((name, _)) = pairs
        .iter()
        .find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        let field = if name.is_empty() {
            "query".to_owned()
        } else {
            name.replace('\0', "\\u0000")
        };
        return Err(
            Problem::invalid_field(&field, "must not contain a NUL character (U+0000)").into(),
        );
    }
    // The error handler set by `query_config` names the field of any other error.
    web::Query::<T>::extract(req)
        .into_inner()
        .map(|q| Query(q.into_inner()))
}

/// serde names missing and unknown fields only in its message: "missing field `order_id`".
fn field_in_message(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    (message.starts_with("missing field") || message.starts_with("unknown field"))
        .then(|| message[start..start + len].to_owned())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        let message = err.to_string();
        let field = field_in_message(
            message
                .trim_start_matches("Query deserialize error: ")
                .trim(),
        )
        .unwrap_or_else(|| "query".to_owned());
        Problem::invalid_field(&field, message).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _| Problem::invalid_field("path", err.to_string()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        order_id: String,
        ttl_minutes: Option<i64>,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"order_id":"a","ttl_minutes":"x"}"#).unwrap_err();
        assert_eq!(e.errors[0].field, "ttl_minutes");
        let e = parse_json::<Body>(br#"{"ttl_minutes":1}"#).unwrap_err();
        assert_eq!(e.errors[0].field, "order_id");
        let e = parse_json::<Body>(br#"{"order_id":"a","extra":1}"#).unwrap_err();
        assert_eq!(e.errors[0].field, "extra");
        for positional in [&br#"["a", 1]"#[..], b" [\"a\"]", b"[]"] {
            let e = parse_json::<Body>(positional).unwrap_err();
            assert_eq!((e.status, e.errors[0].field.as_str()), (400, "body"));
        }
        let e = parse_json::<Body>(br#"{"order_id":"#).unwrap_err();
        assert!(e.detail.contains("not valid JSON"), "{}", e.detail);
        assert_eq!(e.status, 400);
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Batch {
        numbers: Vec<Object<Body>>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Counts {
        small: Option<Whole<u32>>,
        big: Option<Whole<i64>>,
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        let ok = parse_json::<Counts>(br#"{"small": 60.0, "big": -6e1}"#).unwrap();
        assert_eq!((ok.small, ok.big), (Some(Whole(60)), Some(Whole(-60))));
        let ok = parse_json::<Counts>(br#"{"small": 4294967295, "big": null}"#).unwrap();
        assert_eq!((ok.small, ok.big), (Some(Whole(u32::MAX)), None));
        for (body, field) in [
            (&br#"{"small": 60.5}"#[..], "small"),
            (br#"{"small": -1}"#, "small"),
            (br#"{"small": 4294967296}"#, "small"),
            (br#"{"big": 1e19}"#, "big"),
            (br#"{"big": "60"}"#, "big"),
            (br#"{"big": true}"#, "big"),
        ] {
            let e = parse_json::<Counts>(body).unwrap_err();
            assert_eq!(
                (e.status, e.errors[0].field.as_str()),
                (400, field),
                "{e:?}"
            );
        }
    }

    #[test]
    fn an_item_must_be_an_object() {
        let ok = parse_json::<Batch>(br#"{"numbers":[{"order_id":"a"}]}"#).unwrap();
        assert_eq!(ok.numbers[0].order_id, "a");
        let e = parse_json::<Batch>(br#"{"numbers":[{"order_id":"a"},["b", 1]]}"#).unwrap_err();
        assert_eq!((e.status, e.errors[0].field.as_str()), (400, "numbers[1]"));
        let e = parse_json::<Batch>(br#"{"numbers":[{"order_id":"a"},{"order_id":"b","x":1}]}"#)
            .unwrap_err();
        assert_eq!(e.errors[0].field, "numbers[1].x");
        let e = parse_json::<Batch>(br#"{"numbers":[{"order_id":"a"},{"ttl_minutes":"x"}]}"#)
            .unwrap_err();
        assert_eq!(e.errors[0].field, "numbers[1].ttl_minutes");
    }

    #[test]
    fn a_nul_in_a_json_string_is_refused_naming_its_field() {
        let e = parse_json::<Body>(br#"{"order_id":"a\u0000b"}"#).unwrap_err();
        assert_eq!((e.status, e.errors[0].field.as_str()), (400, "order_id"));
        let e = parse_json::<Batch>(br#"{"numbers":[{"order_id":"a"},{"order_id":"\u0000"}]}"#)
            .unwrap_err();
        assert_eq!(e.errors[0].field, "numbers[1].order_id");
        // An escaped backslash followed by `u0000` is no NUL.
        let ok = parse_json::<Body>(br#"{"order_id":"a\\u0000"}"#).unwrap();
        assert_eq!(ok.order_id, "a\\u0000");
    }
}
