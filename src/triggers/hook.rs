//! What an inbound hook is: the workflow a signed request starts, the
//! CEL mapping from the request to the run's input, and the name of the
//! tenant's secret that signs requests (`crate::secrets`; the key is
//! sealed at rest like every secret, and rotated with `weft secret set`).

use serde::{Deserialize, Serialize};

use super::mapping::Mapping;
use crate::model::Millis;

/// A hook as its owner writes it (`PUT /v1/hooks/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    /// The workflow each accepted request starts a run of.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub workflow: String,
    /// The tenant's secret whose value signs requests
    /// (`X-Weft-Signature`).
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    pub secret: String,
    /// A CEL expression over `body` (the JSON body, or its text) and
    /// `headers` (lower-case names) giving the run's input, an object;
    /// without one the body is the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096, example = "{'order': body.data.id, 'amount': body.data.amount}")]
    pub input: Option<String>,
}

/// A hook as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredHook {
    /// As written.
    pub spec: HookSpec,
    /// When it was first set (ms since the epoch).
    pub created_at: Millis,
    /// When it was last set.
    pub updated_at: Millis,
}

impl HookSpec {
    /// The mapping, compiled; `None` when the body is the input. The
    /// error names what is wrong.
    pub fn mapping(&self) -> Result<Option<Mapping>, String> {
        self.input.as_deref().map(Mapping::compile).transpose()
    }
}
