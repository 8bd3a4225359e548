//! The `checksum` function: the SHA-256 of `with.text`, logged, set as the output `sha256`
//! (nodes that need this one see it as `$BATON_<NODE>_SHA256`), and optionally checked
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
        ctx.set_output("sha256", digest.clone())?;
        match with.get("expect").and_then(serde_json::Value::as_str) {
            Some(expected) if expected != digest => Ok(CallOutcome::failure(format!(
                "the checksum is {digest}, not {expected}"
            ))),
            _ => Ok(CallOutcome::Success),
        }
    }
}
