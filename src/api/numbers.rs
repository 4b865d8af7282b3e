//! `/v1/numbers`: the pool of virtual numbers.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::extract::{ApiClient, JsonBody};
use super::views::{Items, NumberView};
use crate::domain::{AreaCode, PhoneNumber};
use crate::error::Problem;
use crate::service::{FieldError, NumberService};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddNumberBody {
    number: String,
    area_code: String,
}

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
    log::info!(client = client.0.as_str(); "client {} adds virtual number {} (area {})", client.0, number.masked(), area.as_str());
    let usage = svc.add(number, area).await?;
    Ok(HttpResponse::Created().json(NumberView::from(usage)))
}

pub async fn list(
    _client: ApiClient,
    svc: web::Data<NumberService>,
) -> Result<HttpResponse, Problem> {
    let items = svc
        .list()
        .await?
        .into_iter()
        .map(NumberView::from)
        .collect();
    Ok(HttpResponse::Ok().json(Items::<NumberView> { items }))
}

pub async fn remove(
    client: ApiClient,
    svc: web::Data<NumberService>,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let number = PhoneNumber::parse(&path.into_inner())
        .map_err(|e| Problem::invalid_field("number", e.to_string()))?;
    svc.remove(number.as_str().to_owned()).await?;
    log::info!(client = client.0.as_str(); "client {} removed virtual number {}", client.0, number.masked());
    Ok(HttpResponse::NoContent().finish())
}
