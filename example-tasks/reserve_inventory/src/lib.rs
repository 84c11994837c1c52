//! Reserves stock for every item of an order, or none of them.
//!
//! Stock levels live in kv (`stock/<sku>`), seeded from a small catalogue
//! the first time a SKU is seen. A missing item fails the step with
//! `out_of_stock`, naming the SKU; since kv writes of a failed attempt are
//! discarded, nothing is reserved for the other items either.

use serde::{Deserialize, Serialize};
use weft_sdk::{TaskError, kv};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Order {
    order_id: String,
    items: Vec<Item>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
struct Item {
    sku: String,
    quantity: u32,
}

#[derive(Serialize, Deserialize)]
struct Reservation {
    reservation_id: String,
    order_id: String,
    items: Vec<Item>,
}

/// Initial stock of the example shop.
const CATALOGUE: [(&str, u32); 4] = [
    ("WIDGET-1", 100),
    ("GADGET-7", 25),
    ("GIZMO-3", 5),
    ("DISCONTINUED-9", 0),
];

fn reserve_inventory(order: Order) -> Result<Reservation, TaskError> {
    if order.items.is_empty() {
        return Err(TaskError::new("invalid_order", "the order has no items"));
    }
    let key = format!("reservations/{}", order.order_id);
    if let Some(existing) = kv::get::<Reservation>(&key)? {
        return Ok(existing);
    }

    for item in &order.items {
        if item.quantity == 0 {
            let message = format!("item {} has quantity 0", item.sku);
            return Err(TaskError::new("invalid_order", message));
        }
        let available = stock(&item.sku)?;
        if available < item.quantity {
            let message = format!(
                "{} is out of stock: {} wanted, {available} available",
                item.sku, item.quantity
            );
            return Err(TaskError::new("out_of_stock", message));
        }
        kv::set(&format!("stock/{}", item.sku), &(available - item.quantity))?;
    }

    let reservation = Reservation {
        reservation_id: format!("res_{}", order.order_id),
        order_id: order.order_id,
        items: order.items,
    };
    kv::set(&key, &reservation)?;
    weft_sdk::info!(
        "reserved {} item(s) for order {}",
        reservation.items.len(),
        reservation.order_id
    );
    Ok(reservation)
}

/// Current stock of a SKU: what kv says, else the catalogue.
fn stock(sku: &str) -> Result<u32, TaskError> {
    if let Some(level) = kv::get::<u32>(&format!("stock/{sku}"))? {
        return Ok(level);
    }
    CATALOGUE
        .iter()
        .find(|(known, _)| *known == sku)
        .map(|(_, level)| *level)
        .ok_or_else(|| TaskError::new("unknown_sku", format!("no product has SKU {sku}")))
}

weft_sdk::export_task!(reserve_inventory);
