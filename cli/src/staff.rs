//! `convene delegate` and `convene undelegate`: the staff member holding
//! the organisation's authority key lets a colleague invite and certify
//! with their own key, and takes that back.

use anyhow::Result;
use serde_json::json;

use crate::commands::Session;
use crate::output::print;

/// Delegates to staff member `user`.
pub async fn delegate(ctx: &Session, user: &str, may_certify_staff: bool) -> Result<()> {
    let client = ctx.open_connected().await?;
    let result = ctx.within(client.delegate(user, may_certify_staff)).await;
    client.shutdown().await;
    result?;
    let whom = if may_certify_staff {
        "leaders and staff"
    } else {
        "leaders"
    };
    print(
        ctx.json,
        json!({ "delegated": user, "may_certify_staff": may_certify_staff }),
        || {
            format!(
                "{user} can now invite {whom} (for a year, or until `convene undelegate {user}`)."
            )
        },
    );
    Ok(())
}

/// Revokes staff member `user`'s delegation.
pub async fn undelegate(ctx: &Session, user: &str) -> Result<()> {
    let client = ctx.open_connected().await?;
    let result = ctx.within(client.revoke_delegation(user)).await;
    client.shutdown().await;
    result?;
    print(ctx.json, json!({ "undelegated": user }), || {
        format!(
            "{user} can no longer invite; users they certified that the authority has not \
             renewed yet are refused from now on."
        )
    });
    Ok(())
}
