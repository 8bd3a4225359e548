//! The `checksum` function: the SHA-256 of `with.text`, logged, and optionally checked
//! against `with.expect`.

use baton_agent::{CallContext, CallOutcome, Function, FunctionError, async_trait};
use sha2::{Digest as _, Sha256};

/// `uses: checksum` with `with: {text: STRING, expect: HEX?}`.
pub(crate) struct Checksum;

#[async_trait]
impl Function for Checksum {
    fn name(&self) -> &str {
        "checksum"
    }

    async fn call(&self, ctx: CallContext<'_>) -> Result<CallOutcome, FunctionError> {
        let with = ctx.with();
        let text = with
            .get("text")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| FunctionError::new("checksum takes `with: {text: STRING}`"))?;
        let digest = hex::encode(Sha256::digest(text.as_bytes()));
        ctx.log().line(format!("sha256 {digest}")).await;
        match with.get("expect").and_then(serde_json::Value::as_str) {
            Some(expected) if expected != digest => Ok(CallOutcome::failure(format!(
                "the checksum is {digest}, not {expected}"
            ))),
            _ => Ok(CallOutcome::Success),
        }
    }
}
