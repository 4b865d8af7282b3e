//! `/v1/bindings`: create, list, get, modify, release and sync AXE bindings.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiClient, JsonBody, NoBody, Query, Whole};
use super::openapi::UpstreamProblems;
use super::views::{BindingStatusSchema, BindingView, HistoryView, Items, Page};
use crate::db::bindings::Filter;
use crate::db::calls::CallStats;
use crate::db::models::Binding;
use crate::domain::{
    AreaCode, BindingStatus, ExtensionDigits, ExtensionNumber, OrderId, ParseError, PhoneNumber,
    RowId, ToneName, TtlMinutes, UserData,
};
use crate::error::Problem;
use crate::service::{
    BindingService, Callback, CreateBinding, CreateOutcome, FieldError, Lifetime, ModifyBinding,
};

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 200;

/// A new binding. Without `virtual_num` the gateway picks a number of the pool (in
/// `area_code` when given) and an extension; with it, `extend_num` may name the extension.
/// Creating is idempotent per `order_id`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBindingBody {
    /// The business service's order id, unique per binding.
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,64}$")]
    order_id: String,
    /// The A number (E.164).
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    bind_num: String,
    /// A virtual number of the pool (E.164); chosen by the gateway when absent.
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    virtual_num: Option<String>,
    /// The city code to pick a virtual number in (`0755`).
    #[schema(pattern = r"^0[0-9]{2,3}$")]
    area_code: Option<String>,
    /// The extension (as many digits as the Huawei app's extensions have); only with
    /// `virtual_num`.
    #[schema(pattern = r"^[0-9]{1,4}$")]
    extend_num: Option<String>,
    /// Record the calls (default `false`).
    record: Option<bool>,
    /// The tone played before a recorded call.
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$")]
    record_hint_tone: Option<String>,
    /// Where calls from unknown numbers go (E.164); not with `callback_tone`.
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    callback_num: Option<String>,
    /// The tone played to unknown callers; not with `callback_num`.
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$")]
    callback_tone: Option<String>,
    /// Lifetime in minutes; none means the Huawei app's default.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 525600)]
    ttl_minutes: Option<Whole<i64>>,
    /// How long calls through `callback_num` stay possible, at most `ttl_minutes`.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 525600)]
    callback_ttl_minutes: Option<Whole<i64>>,
    /// Returned with every call's records: printable ASCII without `{` `}`.
    #[schema(min_length = 1, max_length = 256)]
    user_data: Option<String>,
}

crate::debug_masking!(
    CreateBindingBody {
        order_id, area_code, extend_num, record, record_hint_tone, callback_tone, ttl_minutes,
        callback_ttl_minutes, user_data
    } masking { bind_num, virtual_num, callback_num }
);

// What `null` does per field: see `ModifyBindingBody::parse`.
/// A change to a binding, as a JSON Merge Patch (RFC 7396): an absent member is left as it
/// is, `null` removes it where Huawei can.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModifyBindingBody {
    /// `null` is `false`.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    record: Patch<bool>,
    /// Cannot be removed (`null`), only replaced.
    #[serde(default)]
    #[schema(value_type = String, pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$")]
    record_hint_tone: Patch<String>,
    /// Cannot be removed (`null`), only replaced (by a number or a tone).
    #[serde(default)]
    #[schema(value_type = String, pattern = r"^\+[1-9][0-9]{7,14}$")]
    callback_num: Patch<String>,
    /// Cannot be removed (`null`), only replaced (by a tone or a number).
    #[serde(default)]
    #[schema(value_type = String, pattern = r"^[^\u0000-\u001f\u007f-\u009f]{1,128}$")]
    callback_tone: Patch<String>,
    /// Minutes from now; `null` makes the binding never expire.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 525600)]
    ttl_minutes: Patch<Whole<i64>>,
    /// Cannot be removed (`null`), only replaced.
    #[serde(default)]
    #[schema(value_type = i64, minimum = 1, maximum = 525600)]
    callback_ttl_minutes: Patch<Whole<i64>>,
    /// Accepted only to say why it cannot change (Huawei's modify has no `userData`), so not in
    /// the contract.
    #[serde(default)]
    #[schema(ignore)]
    user_data: Patch<serde_json::Value>,
}

crate::debug_masking!(
    ModifyBindingBody {
        record, record_hint_tone, callback_tone, ttl_minutes, callback_ttl_minutes, user_data
    } masking { callback_num }
);

/// A member of a merge patch: absent, `null`, or a value.
#[derive(Debug, Default, PartialEq)]
pub(crate) enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(d).map(|v| v.map_or(Patch::Null, Patch::Value))
    }
}

impl<T> Patch<T> {
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Patch<U> {
        match self {
            Patch::Absent => Patch::Absent,
            Patch::Null => Patch::Null,
            Patch::Value(v) => Patch::Value(f(v)),
        }
    }

    /// The value, if one was given; `null` is reported as `field` being impossible to remove,
    /// with `why`.
    fn value_or_refuse_null(self, f: &mut Fields, field: &str, why: &str) -> Option<T> {
        match self {
            Patch::Absent => None,
            Patch::Null => {
                f.push(field, &format!("cannot be removed ({why})"));
                None
            }
            Patch::Value(v) => Some(v),
        }
    }
}

/// Collects every field error of a request instead of stopping at the first.
#[derive(Default)]
struct Fields(Vec<FieldError>);

impl Fields {
    fn take<T>(&mut self, field: &str, parsed: Result<T, ParseError>) -> Option<T> {
        parsed
            .map_err(|e| self.0.push(FieldError::new(field, e.to_string())))
            .ok()
    }

    fn opt<T>(
        &mut self,
        field: &str,
        raw: Option<&str>,
        parse: impl Fn(&str) -> Result<T, ParseError>,
    ) -> Option<T> {
        raw.and_then(|r| self.take(field, parse(r)))
    }

    fn push(&mut self, field: &str, detail: &str) {
        self.0.push(FieldError::new(field, detail));
    }

    fn finish(self) -> Result<(), Problem> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Problem::invalid(self.0))
        }
    }
}

fn callback(f: &mut Fields, num: Option<&str>, tone: Option<&str>) -> Option<Callback> {
    match (num, tone) {
        (Some(_), Some(_)) => {
            f.push(
                "callback_tone",
                "give callback_num or callback_tone, not both",
            );
            None
        }
        (Some(n), None) => f
            .take("callback_num", PhoneNumber::parse(n))
            .map(Callback::Num),
        (None, Some(t)) => f
            .take("callback_tone", ToneName::parse(t))
            .map(Callback::Tone),
        (None, None) => None,
    }
}

/// The options create and modify share, parsed with their cross-field rules.
struct Options {
    record_hint_tone: Option<ToneName>,
    callback: Option<Callback>,
    ttl: Option<TtlMinutes>,
    cb_ttl: Option<TtlMinutes>,
}

impl Options {
    fn parse(
        f: &mut Fields,
        record_hint_tone: Option<&str>,
        callback_num: Option<&str>,
        callback_tone: Option<&str>,
        ttl_minutes: Option<i64>,
        callback_ttl_minutes: Option<i64>,
    ) -> Self {
        let record_hint_tone = f.opt("record_hint_tone", record_hint_tone, ToneName::parse);
        let callback = callback(f, callback_num, callback_tone);
        let ttl = ttl_minutes.and_then(|t| f.take("ttl_minutes", TtlMinutes::parse(t)));
        let cb_ttl =
            callback_ttl_minutes.and_then(|t| f.take("callback_ttl_minutes", TtlMinutes::parse(t)));
        if let (Some(t), Some(c)) = (ttl, cb_ttl) {
            if c.get() > t.get() {
                f.push(
                    "callback_ttl_minutes",
                    "must not be greater than ttl_minutes",
                );
            }
        }
        Self {
            record_hint_tone,
            callback,
            ttl,
            cb_ttl,
        }
    }
}

impl CreateBindingBody {
    fn parse(self, digits: ExtensionDigits, created_by: String) -> Result<CreateBinding, Problem> {
        let mut f = Fields::default();
        let order_id = f.take("order_id", OrderId::parse(&self.order_id));
        let bind_num = f.take("bind_num", PhoneNumber::parse(&self.bind_num));
        let virtual_num = f.opt(
            "virtual_num",
            self.virtual_num.as_deref(),
            PhoneNumber::parse,
        );
        let area_code = f.opt("area_code", self.area_code.as_deref(), AreaCode::parse);
        let extend_num = f.opt("extend_num", self.extend_num.as_deref(), |e| {
            ExtensionNumber::parse(e, digits)
        });
        if self.extend_num.is_some() && self.virtual_num.is_none() {
            f.push("extend_num", "can only be given together with virtual_num");
        }
        let Options {
            record_hint_tone,
            callback,
            ttl,
            cb_ttl,
        } = Options::parse(
            &mut f,
            self.record_hint_tone.as_deref(),
            self.callback_num.as_deref(),
            self.callback_tone.as_deref(),
            self.ttl_minutes.map(|t| t.0),
            self.callback_ttl_minutes.map(|t| t.0),
        );
        let user_data = f.opt("user_data", self.user_data.as_deref(), UserData::parse);
        f.finish()?;
        let (Some(order_id), Some(bind_num)) = (order_id, bind_num) else {
            unreachable!("errors were reported above")
        };
        Ok(CreateBinding {
            order_id,
            bind_num,
            virtual_num,
            area_code,
            extend_num,
            record: self.record.unwrap_or(false),
            record_hint_tone,
            callback,
            ttl_minutes: ttl,
            callback_ttl_minutes: cb_ttl,
            user_data,
            created_by,
        })
    }
}

impl ModifyBindingBody {
    /// What `null` does, per field, follows what Huawei's modify can express (docs/API.md):
    /// `record: null` is `false`; `ttl_minutes: null` removes the expiry (`bindExpiredTime` 0,
    /// "never expires"). Huawei has no way to remove a recording hint tone, a callback number or
    /// tone (only to replace one by the other), or a callback-record lifetime, and cannot change
    /// `userData` at all: those are a 400 naming the field.
    fn parse(self) -> Result<ModifyBinding, Problem> {
        let mut f = Fields::default();
        let record = match self.record {
            Patch::Absent => None,
            Patch::Null => Some(false),
            Patch::Value(r) => Some(r),
        };
        let (ttl_minutes, unlimited) = match self.ttl_minutes {
            Patch::Absent => (None, false),
            Patch::Null => (None, true),
            Patch::Value(t) => (Some(t.0), false),
        };
        let record_hint_tone = self.record_hint_tone.value_or_refuse_null(
            &mut f,
            "record_hint_tone",
            "Huawei keeps a recording hint tone once set; give another, or set record to false",
        );
        let callback_num = self.callback_num.value_or_refuse_null(
            &mut f,
            "callback_num",
            "Huawei keeps a callback number once set; give another, or a callback_tone instead",
        );
        let callback_tone = self.callback_tone.value_or_refuse_null(
            &mut f,
            "callback_tone",
            "Huawei keeps a callback tone once set; give another, or a callback_num instead",
        );
        let callback_ttl_minutes = self.callback_ttl_minutes.map(|t| t.0).value_or_refuse_null(
            &mut f,
            "callback_ttl_minutes",
            "Huawei has no way to remove a callback-record lifetime; give another",
        );
        if self.user_data != Patch::Absent {
            f.push(
                "user_data",
                "cannot be changed after the binding is created (Huawei's modify has no userData)",
            );
        }
        let Options {
            record_hint_tone,
            callback,
            ttl,
            cb_ttl,
        } = Options::parse(
            &mut f,
            record_hint_tone.as_deref(),
            callback_num.as_deref(),
            callback_tone.as_deref(),
            ttl_minutes,
            callback_ttl_minutes,
        );
        f.finish()?;
        let ttl = match (ttl, unlimited) {
            (_, true) => Some(Lifetime::Unlimited),
            (Some(t), false) => Some(Lifetime::Minutes(t)),
            (None, false) => None,
        };
        Ok(ModifyBinding {
            record,
            record_hint_tone,
            callback,
            ttl,
            callback_ttl_minutes: cb_ttl,
        })
    }
}

/// The binding as the API shows it, with its call statistics.
async fn view(svc: &BindingService, b: Binding) -> Result<BindingView, Problem> {
    let stats = svc.call_stats(b.id.clone()).await?;
    Ok(BindingView::new(b, stats))
}

/// Creates a binding (idempotent per `order_id`).
#[utoipa::path(
    operation_id = "createBinding",
    tag = "bindings",
    request_body(content = CreateBindingBody, example = json!({
        "order_id": "order-20261206-0001",
        "bind_num": "+8613800000001",
        "area_code": "0755",
        "record": true,
        "ttl_minutes": 1440,
        "user_data": "shop-42"
    })),
    responses(
        (status = 201, description = "Created: Huawei confirmed the binding.", body = BindingView,
            headers(("Location" = String, description = "The binding's URL."))),
        (status = 200, description = "A binding with this `order_id` and the same request exists: it is returned.", body = BindingView),
        (status = 202, description = "Accepted: Huawei's answer is unknown (a timeout); the binding is `pending` until the reconciler settles it.", body = BindingView,
            headers(("Location" = String, description = "The binding's URL."))),
        (status = 409, description = "`conflict`: this `order_id` names another binding, or the number or extension is taken; `no_capacity`: the pool has no free number and extension (in this area)."),
        UpstreamProblems,
    )
)]
#[post("/bindings")]
pub async fn create(
    client: ApiClient,
    svc: web::Data<BindingService>,
    digits: web::Data<ExtensionDigits>,
    JsonBody(body): JsonBody<CreateBindingBody>,
) -> Result<HttpResponse, Problem> {
    let req = body.parse(**digits, client.name().to_owned())?;
    Ok(match svc.create(req, client.actor()).await? {
        // A new binding has had no calls yet.
        CreateOutcome::Created(b) => HttpResponse::Created()
            .insert_header(("Location", format!("/v1/bindings/{}", b.id)))
            .json(BindingView::new(b, CallStats::default())),
        CreateOutcome::Existing(b) => HttpResponse::Ok().json(view(&svc, b).await?),
        CreateOutcome::Pending(b) => HttpResponse::Accepted()
            .insert_header(("Location", format!("/v1/bindings/{}", b.id)))
            .json(view(&svc, b).await?),
    })
}

/// Ids are UUIDs; anything else cannot name a binding (and must not reach the database as is).
pub(crate) fn binding_id(raw: &str) -> Result<String, Problem> {
    RowId::parse(raw)
        .map(RowId::into_string)
        .map_err(|_| Problem::not_found(format!("no binding {}", raw.escape_debug())))
}

/// A binding and its call statistics.
#[utoipa::path(
    operation_id = "getBinding",
    tag = "bindings",
    params(("id" = String, Path, description = "The binding's id.")),
    responses(
        (status = 200, description = "The binding.", body = BindingView),
        (status = 404, description = "`not_found`: no binding with this id for this client."),
    )
)]
#[get("/bindings/{id}")]
pub async fn get(
    client: ApiClient,
    svc: web::Data<BindingService>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let id = binding_id(&path)?;
    let (b, stats) = svc.get_with_stats(id, client.actor()).await?;
    Ok(HttpResponse::Ok().json(BindingView::new(b, stats)))
}

/// Changes a live binding (a JSON Merge Patch).
#[utoipa::path(
    operation_id = "modifyBinding",
    tag = "bindings",
    params(("id" = String, Path, description = "The binding's id.")),
    request_body(content = ModifyBindingBody, example = json!({"record": false, "ttl_minutes": 2880})),
    responses(
        (status = 200, description = "The binding as changed.", body = BindingView),
        (status = 404, description = "`not_found`: no binding with this id for this client."),
        UpstreamProblems,
    )
)]
#[patch("/bindings/{id}")]
pub async fn modify(
    client: ApiClient,
    svc: web::Data<BindingService>,
    path: web::Path<String>,
    JsonBody(body): JsonBody<ModifyBindingBody>,
) -> Result<HttpResponse, Problem> {
    let id = binding_id(&path)?;
    let change = body.parse()?;
    let b = svc.modify(id, change, client.actor()).await?;
    Ok(HttpResponse::Ok().json(view(&svc, b).await?))
}

/// Releases a binding (Huawei unbinds the numbers).
#[utoipa::path(
    operation_id = "releaseBinding",
    tag = "bindings",
    params(("id" = String, Path, description = "The binding's id.")),
    responses(
        (status = 200, description = "The binding, released.", body = BindingView),
        (status = 404, description = "`not_found`: no binding with this id for this client."),
        UpstreamProblems,
    )
)]
#[delete("/bindings/{id}")]
pub async fn release(
    client: ApiClient,
    svc: web::Data<BindingService>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let id = binding_id(&path)?;
    let b = svc.release(id, client.actor()).await?;
    Ok(HttpResponse::Ok().json(view(&svc, b).await?))
}

/// Asks Huawei for the binding's state now and stores it.
#[utoipa::path(
    operation_id = "syncBinding",
    tag = "bindings",
    params(("id" = String, Path, description = "The binding's id.")),
    responses(
        (status = 200, description = "The binding as Huawei has it.", body = BindingView),
        (status = 400, description = "`invalid_request`: a body was sent (this route takes none, or `{}`)."),
        (status = 404, description = "`not_found`: no binding with this id for this client."),
        UpstreamProblems,
    )
)]
#[post("/bindings/{id}/sync")]
pub async fn sync(
    client: ApiClient,
    svc: web::Data<BindingService>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let id = binding_id(&path)?;
    let b = svc.sync(id, client.actor()).await?;
    Ok(HttpResponse::Ok().json(view(&svc, b).await?))
}

/// A binding's history: every state change, oldest first.
#[utoipa::path(
    operation_id = "getBindingHistory",
    tag = "bindings",
    params(("id" = String, Path, description = "The binding's id.")),
    responses(
        (status = 200, description = "The history.", body = Items<HistoryView>),
        (status = 404, description = "`not_found`: no binding with this id for this client."),
    )
)]
#[get("/bindings/{id}/history")]
pub async fn history(
    client: ApiClient,
    svc: web::Data<BindingService>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let id = binding_id(&path)?;
    let rows = svc.history(id, client.actor()).await?;
    Ok(HttpResponse::Ok().json(Items {
        items: rows.into_iter().map(HistoryView::from).collect(),
    }))
}

/// Filters of the binding list (all optional, combined with AND).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(pattern = r"^[A-Za-z0-9._:-]{1,64}$")]
    order_id: Option<String>,
    /// E.164; send `+` as `%2B`.
    #[param(pattern = r"^\+[1-9][0-9]{7,14}$")]
    bind_num: Option<String>,
    /// E.164; send `+` as `%2B`.
    #[param(pattern = r"^\+[1-9][0-9]{7,14}$")]
    virtual_num: Option<String>,
    /// Huawei's id of the binding.
    subscription_id: Option<String>,
    #[param(value_type = Option<BindingStatusSchema>)]
    status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

crate::debug_masking!(
    ListQuery {
        order_id, subscription_id, status, limit, cursor
    } masking { bind_num, virtual_num }
);

const PLUS_HINT: &str = " (in a query string, send '+' as %2B)";

impl ListQuery {
    fn parse(self) -> Result<(Filter, i64), Problem> {
        let mut f = Fields::default();
        let phone = |f: &mut Fields, field: &str, raw: Option<&str>| {
            raw.and_then(|r| match PhoneNumber::parse(r) {
                Ok(n) => Some(n.as_str().to_owned()),
                Err(e) => {
                    let hint = if r.starts_with(' ') { PLUS_HINT } else { "" };
                    f.push(field, &format!("{e}{hint}"));
                    None
                }
            })
        };
        let bind_num = phone(&mut f, "bind_num", self.bind_num.as_deref());
        let virtual_num = phone(&mut f, "virtual_num", self.virtual_num.as_deref());
        let order_id = f
            .opt("order_id", self.order_id.as_deref(), OrderId::parse)
            .map(|o| o.as_str().to_owned());
        let status = f.opt("status", self.status.as_deref(), BindingStatus::parse);
        let limit = match self.limit.as_deref().map(str::parse::<i64>) {
            None => DEFAULT_PAGE,
            Some(Ok(l)) if (1..=MAX_PAGE).contains(&l) => l,
            Some(_) => {
                f.push(
                    "limit",
                    &format!("must be a whole number from 1 to {MAX_PAGE}"),
                );
                DEFAULT_PAGE
            }
        };
        let before_id = self.cursor.as_deref().and_then(|c| {
            let decoded = decode_cursor(c);
            if decoded.is_none() {
                f.push("cursor", "is not a cursor this API returned");
            }
            decoded
        });
        f.finish()?;
        Ok((
            Filter {
                created_by: None,
                order_id,
                bind_num,
                virtual_num,
                subscription_id: self.subscription_id,
                status,
                before_id,
            },
            limit,
        ))
    }
}

/// A list cursor: the id of the last binding of the page, so the next page starts after it.
fn encode_cursor(id: &str) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// The binding id in a cursor [`encode_cursor`] wrote; `None` for anything else.
fn decode_cursor(raw: &str) -> Option<String> {
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| RowId::parse_canonical(&s).ok())
        .map(RowId::into_string)
}

/// Bindings of this client (of every client with `admin`), newest first.
#[utoipa::path(
    operation_id = "listBindings",
    tag = "bindings",
    params(ListQuery),
    responses((status = 200, description = "One page of bindings.", body = Page<BindingView>))
)]
#[get("/bindings")]
pub async fn list(
    client: ApiClient,
    svc: web::Data<BindingService>,
    query: Query<ListQuery>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let (filter, limit) = query.into_inner().parse()?;
    let (rows, more) = svc.list(filter, limit, client.actor()).await?;
    let next_cursor = more
        .then(|| rows.last().map(|(b, _)| encode_cursor(&b.id)))
        .flatten();
    Ok(HttpResponse::Ok().json(Page {
        items: rows
            .into_iter()
            .map(|(b, s)| BindingView::new(b, s))
            .collect(),
        next_cursor,
    }))
}

/// Hostile cursors: any text is a cursor this API wrote or a 400, never a panic.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_cursors_never_panic(raw in any::<String>(), b64 in "[A-Za-z0-9_-]{0,64}") {
            let _ = decode_cursor(&raw);
            let _ = decode_cursor(&b64);
        }

        #[test]
        fn cursors_round_trip(id in any::<u128>()) {
            let id = uuid::Uuid::from_u128(id).to_string();
            prop_assert_eq!(decode_cursor(&encode_cursor(&id)), Some(id));
        }

        #[test]
        fn other_text_is_not_a_cursor(text in "[^-]{0,31}") {
            prop_assert_eq!(decode_cursor(&encode_cursor(&text)), None);
        }

        #[test]
        fn other_spellings_of_an_id_are_not_a_cursor(id in any::<u128>()) {
            let id = uuid::Uuid::from_u128(id);
            let canonical = id.hyphenated().to_string();
            for other in [
                id.hyphenated().to_string().to_uppercase(),
                id.braced().to_string(),
                id.simple().to_string(),
                id.urn().to_string(),
            ] {
                if other != canonical {
                    prop_assert_eq!(decode_cursor(&encode_cursor(&other)), None, "{}", other);
                }
            }
        }
    }
}
