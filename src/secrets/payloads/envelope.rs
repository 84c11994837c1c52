//! How a sealed payload is written into the records the store already
//! has, so neither backend changes: a sealed value is a string,
//! `weft:sealed:v1:<data key id>:<base64 of nonce and ciphertext>`, in
//! the place of the value (a JSON value, a message, a log, a kv value),
//! and the associated data names that place (tenant, record, key, field),
//! so a sealed value moved to another record does not open there.
//!
//! [`Sealing`] seals the payload fields of a record in place; [`Opening`]
//! finds sealed fields and opens them. Neither knows where keys come
//! from: the caller hands each the data key to seal with, or a way to
//! find the one that sealed a value.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{AttemptRecord, Failure, RunId, RunRecord, UnitKey, UnitRecord};
use crate::sandbox::http::HttpCall;
use crate::sandbox::{AttemptLogs, Outcome};
use crate::secrets::{NONCE_LEN, Sealed, Sealer};

/// What every sealed value starts with.
pub const PREFIX: &str = "weft:sealed:v1:";

/// Where a payload is stored: its associated data.
#[derive(Debug, Clone)]
pub struct Place(Vec<u8>);

impl Place {
    fn new(tenant: &str, kind: &str) -> Place {
        let mut place = Place(b"weft-payload".to_vec());
        place.push(tenant.as_bytes()).push(kind.as_bytes());
        place
    }

    /// Appends a part, length first, so no two lists of parts are the
    /// same bytes.
    fn push(&mut self, part: &[u8]) -> &mut Place {
        self.0.extend_from_slice(&(part.len() as u32).to_be_bytes());
        self.0.extend_from_slice(part);
        self
    }

    fn field(&self, name: &str) -> Place {
        let mut place = self.clone();
        place.push(name.as_bytes());
        place
    }

    /// A run's field.
    pub fn run(tenant: &str, run: RunId) -> Place {
        let mut place = Place::new(tenant, "run");
        place.push(&run.0.to_be_bytes());
        place
    }

    /// A unit's field.
    pub fn unit(tenant: &str, run: RunId, key: UnitKey) -> Place {
        let mut place = Place::new(tenant, "unit");
        place.push(&run.0.to_be_bytes()).push(unit_bytes(key).as_slice());
        place
    }

    /// An attempt's field.
    pub fn attempt(tenant: &str, run: RunId, key: UnitKey, attempt: u32) -> Place {
        let mut place = Place::new(tenant, "attempt");
        place
            .push(&run.0.to_be_bytes())
            .push(unit_bytes(key).as_slice())
            .push(&attempt.to_be_bytes());
        place
    }

    /// A kv entry's value.
    pub fn kv(tenant: &str, key: &str) -> Place {
        let mut place = Place::new(tenant, "kv");
        place.push(key.as_bytes());
        place
    }
}

fn unit_bytes(key: UnitKey) -> Vec<u8> {
    let item = key.item.map_or(-1i64, i64::from);
    [key.step.to_be_bytes().as_slice(), &item.to_be_bytes()].concat()
}

/// Seals `plaintext` at `place` as an envelope string.
fn envelope(key: &Sealer, place: &Place, plaintext: &[u8]) -> String {
    let sealed = key.seal(&place.0, plaintext);
    let body = [sealed.nonce.as_slice(), &sealed.ciphertext].concat();
    format!("{PREFIX}{}:{}", sealed.key_id, STANDARD.encode(body))
}

/// The data key id an envelope names, if `text` is one.
pub fn sealed_by(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(PREFIX)?;
    let (id, _) = rest.split_once(':')?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unopened(pub String);

/// Opens the envelope `text` at `place` with `key`.
fn open_envelope(key: &Sealer, place: &Place, text: &str) -> Result<Vec<u8>, Unopened> {
    let malformed = || Unopened("a sealed value is malformed".into());
    let rest = text.strip_prefix(PREFIX).ok_or_else(malformed)?;
    let (key_id, body) = rest.split_once(':').ok_or_else(malformed)?;
    let body = STANDARD.decode(body).map_err(|_| malformed())?;
    if body.len() < NONCE_LEN {
        return Err(malformed());
    }
    let (nonce, ciphertext) = body.split_at(NONCE_LEN);
    key.open(
        &place.0,
        &Sealed {
            key_id: key_id.to_string(),
            nonce: nonce.to_vec(),
            ciphertext: ciphertext.to_vec(),
        },
    )
    .map_err(|e| Unopened(format!("a sealed value does not open: {e}")))
}

/// Seals the payload fields of records with one tenant's data key.
pub struct Sealing<'a> {
    /// The tenant's data key.
    pub key: &'a Sealer,
}

impl Sealing<'_> {
    fn string(&self, place: &Place, text: &mut String) {
        *text = envelope(self.key, place, text.as_bytes());
    }

    fn value(&self, place: &Place, value: &mut Value) {
        let json = serde_json::to_vec(value).expect("a JSON value serialises");
        *value = Value::String(envelope(self.key, place, &json));
    }

    fn failure(&self, place: &Place, failure: &mut Option<Failure>) {
        if let Some(failure) = failure {
            self.string(&place.field("error"), &mut failure.message);
        }
    }

    /// A run's input, output, error message and kept signals' payloads.
    pub fn run(&self, run: &mut RunRecord) {
        let place = Place::run(&run.tenant, run.id);
        self.value(&place.field("input"), &mut run.input);
        if let Some(output) = &mut run.output {
            self.value(&place.field("output"), output);
        }
        self.failure(&place, &mut run.error);
        for (i, kept) in run.signals.iter_mut().enumerate() {
            self.value(&place.field(&format!("signal.{i}")), &mut kept.payload);
        }
    }

    /// A unit's output and error message.
    pub fn unit(&self, place: &Place, unit: &mut UnitRecord) {
        if let Some(output) = &mut unit.output {
            self.value(&place.field("output"), output);
        }
        self.failure(place, &mut unit.error);
    }

    /// An attempt's output or messages, its logs and its HTTP calls (whose
    /// URLs may name payload data).
    pub fn attempt(&self, place: &Place, attempt: &mut AttemptRecord) {
        if let Some(text) = outcome_text(&mut attempt.outcome) {
            self.string(&place.field("outcome"), text);
        }
        let captured = Captured {
            logs: std::mem::take(&mut attempt.logs),
            http: std::mem::take(&mut attempt.http),
        };
        let json = serde_json::to_vec(&captured).expect("logs serialise");
        attempt.logs.stdout = envelope(self.key, &place.field("logs"), &json);
    }

    /// A kv value: the envelope as a JSON string, so it still reads as
    /// JSON where kv values are shown.
    pub fn kv(&self, place: &Place, value: &mut Vec<u8>) {
        let text = envelope(self.key, place, value);
        *value = serde_json::to_vec(&Value::String(text)).expect("a string serialises");
    }
}

/// What an attempt captured, sealed as one value.
#[derive(Serialize, Deserialize)]
struct Captured {
    logs: AttemptLogs,
    #[serde(default)]
    http: Vec<HttpCall>,
}

fn outcome_text(outcome: &mut Outcome) -> Option<&mut String> {
    match outcome {
        Outcome::Ok { output } => Some(output),
        Outcome::GuestError { message, .. } | Outcome::Trap { message } => Some(message),
        Outcome::InvalidOutput { reason } => Some(reason),
        Outcome::OutOfFuel | Outcome::MemoryLimit | Outcome::Timeout => None,
    }
}

/// Where [`Opening`] finds the data keys envelopes name.
#[derive(Debug)]
pub enum KeyLookup {
    /// Finds none, but notes each id asked for: a first pass over
    /// records, which changes nothing, to learn which keys to load.
    Collect(Vec<String>),
    /// One tenant's keys by id; `None` for an id the tenant has no key
    /// of (the text is then a plain value that happens to look sealed,
    /// kept as it is).
    Known(std::collections::HashMap<String, Option<Sealer>>),
}

impl KeyLookup {
    fn key(&mut self, id: &str) -> Option<Sealer> {
        match self {
            KeyLookup::Collect(ids) => {
                if !ids.iter().any(|known| known == id) {
                    ids.push(id.to_string());
                }
                None
            }
            KeyLookup::Known(keys) => keys.get(id).cloned().flatten(),
        }
    }
}

/// Opens whatever payload fields of one tenant's records are sealed.
pub struct Opening<'a> {
    /// Where data keys come from.
    pub keys: &'a mut KeyLookup,
}

impl Opening<'_> {
    /// The plaintext of `text` at `place`, if `text` is sealed.
    fn bytes(&mut self, place: &Place, text: &str) -> Result<Option<Vec<u8>>, Unopened> {
        let Some(id) = sealed_by(text) else {
            return Ok(None);
        };
        match self.keys.key(id) {
            Some(key) => open_envelope(&key, place, text).map(Some),
            None => Ok(None),
        }
    }

    fn string(&mut self, place: &Place, text: &mut String) -> Result<(), Unopened> {
        if let Some(bytes) = self.bytes(place, text)? {
            *text = String::from_utf8(bytes).map_err(|_| Unopened("a sealed text is not UTF-8".into()))?;
        }
        Ok(())
    }

    fn value(&mut self, place: &Place, value: &mut Value) -> Result<(), Unopened> {
        let Value::String(text) = value else {
            return Ok(());
        };
        if let Some(bytes) = self.bytes(place, text)? {
            *value = serde_json::from_slice(&bytes).map_err(|_| Unopened("a sealed value is not JSON".into()))?;
        }
        Ok(())
    }

    fn failure(&mut self, place: &Place, failure: &mut Option<Failure>) -> Result<(), Unopened> {
        match failure {
            Some(failure) => self.string(&place.field("error"), &mut failure.message),
            None => Ok(()),
        }
    }

    /// A run's sealed fields.
    pub fn run(&mut self, run: &mut RunRecord) -> Result<(), Unopened> {
        let place = Place::run(&run.tenant, run.id);
        self.value(&place.field("input"), &mut run.input)?;
        if let Some(output) = &mut run.output {
            self.value(&place.field("output"), output)?;
        }
        for (i, kept) in run.signals.iter_mut().enumerate() {
            self.value(&place.field(&format!("signal.{i}")), &mut kept.payload)?;
        }
        self.failure(&place, &mut run.error)
    }

    /// A unit's sealed fields.
    pub fn unit(&mut self, place: &Place, unit: &mut UnitRecord) -> Result<(), Unopened> {
        if let Some(output) = &mut unit.output {
            self.value(&place.field("output"), output)?;
        }
        self.failure(place, &mut unit.error)
    }

    /// An attempt's sealed fields.
    pub fn attempt(&mut self, place: &Place, attempt: &mut AttemptRecord) -> Result<(), Unopened> {
        if let Some(text) = outcome_text(&mut attempt.outcome) {
            self.string(&place.field("outcome"), text)?;
        }
        let logs = &attempt.logs;
        if !(logs.lines.is_empty() && logs.stderr.is_empty()) {
            return Ok(());
        }
        if let Some(bytes) = self.bytes(&place.field("logs"), &logs.stdout)? {
            let captured: Captured =
                serde_json::from_slice(&bytes).map_err(|_| Unopened("sealed logs do not decode".into()))?;
            attempt.logs = captured.logs;
            attempt.http = captured.http;
        }
        Ok(())
    }

    /// A kv value, as stored.
    pub fn kv(&mut self, place: &Place, value: &mut Vec<u8>) -> Result<(), Unopened> {
        if !value.starts_with(b"\"weft:sealed:") {
            return Ok(());
        }
        let Ok(Value::String(text)) = serde_json::from_slice(value) else {
            return Ok(());
        };
        if let Some(bytes) = self.bytes(place, &text)? {
            *value = bytes;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RunStatus, UnitStatus};
    use crate::sandbox::{Level, LogLine};
    use crate::secrets::KEY_LEN;

    fn one(key: Sealer) -> KeyLookup {
        KeyLookup::Known([(key.key_id().to_string(), Some(key))].into())
    }

    fn run() -> RunRecord {
        RunRecord {
            id: RunId(7),
            tenant: "acme".into(),
            workflow: "order".into(),
            workflow_digest: crate::digest::Digest::of(b"w"),
            modules: vec![],
            signals: vec![crate::model::KeptSignal {
                name: "approved".into(),
                payload: serde_json::json!({"iban": "DE89370400440532013000"}),
            }],
            signal_ids: vec!["s-1".into()],
            signals_received: 1,
            paused: false,
            parent: None,
            input: serde_json::json!({"email": "ada@example.com"}),
            priority: 0,
            status: RunStatus::Failed,
            output: Some(serde_json::json!({"card": "4242"})),
            error: Some(Failure {
                code: "card_declined".into(),
                message: "card 4242 declined".into(),
                step: Some("pay".into()),
            }),
            created_at: 1,
            updated_at: 2,
            caps: None,
        }
    }

    #[test]
    fn a_run_seals_its_payloads_and_opens_back() {
        let key = Sealer::new(&[3; KEY_LEN]);
        let plain = run();
        let mut sealed = plain.clone();
        Sealing { key: &key }.run(&mut sealed);
        let text = serde_json::to_string(&sealed).unwrap();
        for secret in ["ada@example.com", "4242", "DE89370400440532013000"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        // What queries need stays readable.
        assert_eq!(sealed.error.as_ref().unwrap().code, "card_declined");
        let mut keys = one(key);
        Opening { keys: &mut keys }.run(&mut sealed).unwrap();
        assert_eq!(sealed, plain);
    }

    #[test]
    fn a_value_moved_to_another_record_does_not_open() {
        let key = Sealer::new(&[3; KEY_LEN]);
        let mut first = run();
        Sealing { key: &key }.run(&mut first);
        let mut other = run();
        other.id = RunId(8);
        other.input = first.input.clone();
        let mut keys = one(key);
        let error = Opening { keys: &mut keys }.run(&mut other).unwrap_err();
        assert!(error.0.contains("does not authenticate"), "{error}");
    }

    #[test]
    fn text_that_only_looks_sealed_is_kept_as_it_is() {
        let key = Sealer::new(&[3; KEY_LEN]);
        let mut record = run();
        let lookalike = format!("{PREFIX}0123456789abcdef:AAAA");
        record.input = Value::String(lookalike.clone());
        let mut keys = one(key);
        Opening { keys: &mut keys }.run(&mut record).unwrap();
        assert_eq!(record.input, Value::String(lookalike));
    }

    #[test]
    fn units_attempts_and_kv_values_round_trip() {
        let key = Sealer::new(&[4; KEY_LEN]);
        let unit_key = UnitKey { step: 2, item: Some(1) };
        let place = Place::unit("acme", RunId(7), unit_key);
        let plain_unit = UnitRecord {
            status: UnitStatus::Succeeded,
            output: Some(serde_json::json!("ship to Berlin")),
            ..UnitRecord::pending()
        };
        let mut unit = plain_unit.clone();
        Sealing { key: &key }.unit(&place, &mut unit);
        assert!(!serde_json::to_string(&unit).unwrap().contains("Berlin"));

        let attempt_place = Place::attempt("acme", RunId(7), unit_key, 1);
        let plain_attempt = AttemptRecord {
            attempt: 1,
            outcome: Outcome::Ok {
                output: r#"{"to":"Berlin"}"#.into(),
            },
            fuel_used: 5,
            started_at: 3,
            duration_us: 4,
            logs: AttemptLogs {
                lines: vec![LogLine {
                    level: Level::Info,
                    message: "sent to Berlin".into(),
                }],
                stdout: "Berlin\n".into(),
                stderr: "Berlin?".into(),
                truncated: false,
            },
            http: vec![],
            node: None,
        };
        let mut attempt = plain_attempt.clone();
        Sealing { key: &key }.attempt(&attempt_place, &mut attempt);
        assert!(!serde_json::to_string(&attempt).unwrap().contains("Berlin"));

        let kv_place = Place::kv("acme", "orders/1");
        let mut value = br#"{"city":"Berlin"}"#.to_vec();
        Sealing { key: &key }.kv(&kv_place, &mut value);
        assert!(!String::from_utf8_lossy(&value).contains("Berlin"));
        assert!(serde_json::from_slice::<Value>(&value).is_ok(), "still JSON");

        let mut keys = one(key);
        let mut opening = Opening { keys: &mut keys };
        opening.unit(&place, &mut unit).unwrap();
        opening.attempt(&attempt_place, &mut attempt).unwrap();
        opening.kv(&kv_place, &mut value).unwrap();
        assert_eq!(unit, plain_unit);
        assert_eq!(attempt, plain_attempt);
        assert_eq!(value, br#"{"city":"Berlin"}"#);
    }
}
