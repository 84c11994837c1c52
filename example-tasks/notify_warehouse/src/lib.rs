//! Asks the warehouse nearest the customer to ship a reservation.

use serde::{Deserialize, Serialize};
use weft_sdk::TaskError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    order_id: String,
    reservation_id: String,
    ship_to: Address,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Address {
    name: String,
    line1: String,
    city: String,
    postal_code: String,
    country: String,
}

#[derive(Serialize)]
struct Shipment {
    shipment_id: String,
    order_id: String,
    warehouse: &'static str,
    status: &'static str,
}

fn notify_warehouse(request: Request) -> Result<Shipment, TaskError> {
    let address = &request.ship_to;
    let fields = [
        ("name", &address.name),
        ("line1", &address.line1),
        ("city", &address.city),
        ("postal_code", &address.postal_code),
    ];
    if let Some((field, _)) = fields.iter().find(|(_, value)| value.trim().is_empty()) {
        let message = format!("ship_to.{field} is empty");
        return Err(TaskError::new("invalid_address", message));
    }
    let warehouse = match address.country.as_str() {
        "DE" | "AT" | "CH" | "PL" | "CZ" => "FRA-1",
        "US" | "CA" => "NYC-2",
        "GB" | "IE" => "LHR-1",
        _ => "AMS-1",
    };
    weft_sdk::info!("reservation {} goes out from {warehouse}", request.reservation_id);
    Ok(Shipment {
        shipment_id: format!("shp_{}", request.order_id),
        order_id: request.order_id,
        warehouse,
        status: "queued",
    })
}

weft_sdk::export_task!(notify_warehouse);
