//! `/v1/numbers`: the pool of virtual numbers.

use actix_web::{delete, get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{ApiClient, JsonBody, NoBody, Object};
use super::views::{Items, NumberView};
use crate::domain::{AreaCode, PhoneNumber};
use crate::error::Problem;
use crate::service::numbers::repeated;
use crate::service::{AddManyError, FieldError, NewNumber, NumberService};

/// Most numbers in one `POST /v1/numbers:batch`.
pub const MAX_BATCH: usize = 1000;

/// Largest `POST /v1/numbers:batch` body: 1,000 numbers take about 50 KB as compact JSON and
/// about 85 KB pretty-printed, so the API's usual 64 KiB is too small.
pub const MAX_BATCH_BODY_BYTES: usize = 256 * 1024;

/// A virtual number of the Huawei app, added to the pool.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddNumberBody {
    /// E.164.
    #[schema(pattern = r"^\+[1-9][0-9]{7,14}$")]
    number: String,
    /// The city code the number belongs to (`0755`).
    #[schema(pattern = r"^0[0-9]{2,3}$")]
    area_code: String,
}

crate::debug_masking!(AddNumberBody { area_code } masking { number });

/// Adds a virtual number to the pool.
#[utoipa::path(
    operation_id = "addNumber",
    tag = "numbers",
    request_body(content = AddNumberBody, example = json!({"number": "+8617000000001", "area_code": "0755"})),
    responses(
        (status = 201, description = "Added.", body = NumberView),
        (status = 409, description = "`conflict`: the number is in the pool already."),
    )
)]
#[post("/numbers")]
pub async fn add(
    client: ApiClient,
    svc: web::Data<NumberService>,
    JsonBody(body): JsonBody<AddNumberBody>,
) -> Result<HttpResponse, Problem> {
    let mut errors = Vec::new();
    let number = PhoneNumber::parse(&body.number)
        .map_err(|e| errors.push(FieldError::new("number", e.to_string())))
        .ok();
    let area = AreaCode::parse(&body.area_code)
        .map_err(|e| errors.push(FieldError::new("area_code", e.to_string())))
        .ok();
    let (Some(number), Some(area)) = (number, area) else {
        return Err(Problem::invalid(errors));
    };
    log::info!(client = client.name(); "client {} adds virtual number {} (area {})", client.name(), number.masked(), area.as_str());
    let usage = svc.add(number, area).await?;
    Ok(HttpResponse::Created().json(NumberView::from(usage)))
}

/// Numbers to add together: all or none.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddNumbersBody {
    /// 1 to 1,000 numbers, none repeated.
    #[schema(value_type = Vec<AddNumberBody>, min_items = 1, max_items = 1000)]
    numbers: Vec<Object<AddNumberBody>>,
}

/// Adds many numbers to the pool: every one or none.
#[utoipa::path(
    operation_id = "addNumbers",
    tag = "numbers",
    request_body(content = AddNumbersBody, example = json!({"numbers": [
        {"number": "+8617000000001", "area_code": "0755"},
        {"number": "+8617000000002", "area_code": "0755"}
    ]})),
    responses(
        (status = 201, description = "Added, in the order given.", body = Items<NumberView>),
        (status = 409, description = "`conflict`: `errors` names each number already in the pool (`numbers[3].number`)."),
    )
)]
#[post("/numbers:batch")]
pub async fn add_many(
    client: ApiClient,
    svc: web::Data<NumberService>,
    JsonBody(body): JsonBody<AddNumbersBody, MAX_BATCH_BODY_BYTES>,
) -> Result<HttpResponse, Problem> {
    let count = body.numbers.len();
    if !(1..=MAX_BATCH).contains(&count) {
        return Err(Problem::invalid_field(
            "numbers",
            format!("must hold 1 to {MAX_BATCH} numbers; it holds {count}"),
        ));
    }
    // (item index, error), so that errors are reported in request order.
    let mut errors = Vec::new();
    let mut parsed = Vec::with_capacity(count);
    for (i, item) in body.numbers.iter().enumerate() {
        let number = PhoneNumber::parse(&item.number)
            .map_err(|e| errors.push((i, item_error(i, "number", e.to_string()))))
            .ok();
        let area = AreaCode::parse(&item.area_code)
            .map_err(|e| errors.push((i, item_error(i, "area_code", e.to_string()))))
            .ok();
        if let (Some(number), Some(area_code)) = (number, area) {
            parsed.push((i, NewNumber { number, area_code }));
        }
    }
    for (i, first) in repeated(parsed.iter().map(|(i, n)| (*i, &n.number))) {
        errors.push((i, repeat_error(i, first)));
    }
    if !errors.is_empty() {
        errors.sort_by_key(|(i, _)| *i);
        return Err(Problem::invalid(
            errors.into_iter().map(|(_, e)| e).collect(),
        ));
    }
    log::info!(client = client.name(); "client {} adds {count} virtual numbers", client.name());
    // Nothing failed to parse, so a position in `items` is the index in the request.
    let items = parsed.into_iter().map(|(_, n)| n).collect();
    match svc.add_many(items).await {
        Ok(added) => Ok(HttpResponse::Created().json(Items::<NumberView> {
            items: added.into_iter().map(NumberView::from).collect(),
        })),
        Err(AddManyError::Repeated(repeats)) => Err(Problem::invalid(
            repeats
                .into_iter()
                .map(|(i, first)| repeat_error(i, first))
                .collect(),
        )),
        Err(AddManyError::InPool(positions)) => Err(Problem::conflicts(
            positions
                .into_iter()
                .map(|i| item_error(i, "number", "is already in the pool"))
                .collect(),
        )),
        Err(AddManyError::Service(e)) => Err(e.into()),
    }
}

/// An error of one item of the batch: field `numbers[3].number`.
fn item_error(index: usize, field: &str, detail: impl Into<String>) -> FieldError {
    FieldError::new(format!("numbers[{index}].{field}"), detail)
}

fn repeat_error(index: usize, first: usize) -> FieldError {
    item_error(index, "number", format!("repeats numbers[{first}].number"))
}

/// The pool: every number and its use.
#[utoipa::path(
    operation_id = "listNumbers",
    tag = "numbers",
    responses((status = 200, description = "The numbers.", body = Items<NumberView>))
)]
#[get("/numbers")]
pub async fn list(
    _client: ApiClient,
    svc: web::Data<NumberService>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let items = svc
        .list()
        .await?
        .into_iter()
        .map(NumberView::from)
        .collect();
    Ok(HttpResponse::Ok().json(Items::<NumberView> { items }))
}

/// Removes a number from the pool (only when no live binding uses it).
#[utoipa::path(
    operation_id = "removeNumber",
    tag = "numbers",
    params(("number" = String, Path, description = "The number, E.164 (`+` as `%2B`).", pattern = r"^\+[1-9][0-9]{7,14}$")),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, description = "`invalid_request`: not an E.164 number."),
        (status = 404, description = "`not_found`: the number is not in the pool."),
        (status = 409, description = "`conflict`: live bindings use the number."),
    )
)]
#[delete("/numbers/{number}")]
pub async fn remove(
    client: ApiClient,
    svc: web::Data<NumberService>,
    path: web::Path<String>,
    _: NoBody,
) -> Result<HttpResponse, Problem> {
    let number = PhoneNumber::parse(&path.into_inner())
        .map_err(|e| Problem::invalid_field("number", e.to_string()))?;
    svc.remove(number.as_str().to_owned()).await?;
    log::info!(client = client.name(); "client {} removed virtual number {}", client.name(), number.masked());
    Ok(HttpResponse::NoContent().finish())
}
