//! A stand-in for the services the `order-http` workflow calls: a payment
//! gateway that wants an API key, and a mail relay. It keeps everything in
//! memory and prints one line per request (never the key).
//!
//! ```sh
//! cargo run --example stand-in                      # 127.0.0.1:8787, key sk_test_weft
//! cargo run --example stand-in -- --port 0          # any free port, printed
//! STAND_IN_KEY=sk_other cargo run --example stand-in
//! ```
//!
//! - `POST /v1/charges` `{order_id, amount_cents, currency, card_number}`
//!   with `Authorization: Bearer KEY`: 201 with a charge; 402 for the
//!   declined test card 4000 0000 0000 0002; 401 without the key. A second
//!   charge for an order returns the first (idempotent by order).
//! - `POST /v1/charges/{id}/refund`: 200 with a refund, 404 for no charge.
//! - `POST /v1/emails` `{to, subject, text}`: 202 with a message id.

mod services;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut port = 8787u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(value)) => port = value.parse().map_err(std::io::Error::other)?,
            _ => {
                eprintln!("usage: stand-in [--port PORT]   (the key comes from STAND_IN_KEY, default sk_test_weft)");
                std::process::exit(2);
            }
        }
    }
    let key = std::env::var("STAND_IN_KEY").unwrap_or_else(|_| "sk_test_weft".into());
    let app = services::app(key);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("stand-in services listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
