//! What staff do for the network: `invite`, `suspend`, and `delegate` /
//! `undelegate` (the staff member holding the organisation's authority key
//! lets a colleague invite and certify with their own key, and takes that
//! back).

use std::time::Duration;

use anyhow::Result;
use convene_client::trust::UserDetails;
use convene_client::Role;
use serde_json::json;

use crate::output::print;
use crate::session::{Open, Session};
use crate::{InviteArgs, RoleArg};

/// Creates an invite for a new user.
pub async fn invite(ctx: &Session, args: InviteArgs) -> Result<()> {
    let role = match args.role {
        RoleArg::Leader => Role::Leader,
        RoleArg::Staff => Role::Staff,
    };
    let user_id = args.user_id;
    let display_name = args.name;
    let details = UserDetails {
        user_id: user_id.clone(),
        display_name: display_name.clone(),
        role,
        sector: args.sector.unwrap_or_default(),
    };
    let invite = ctx
        .with_client(Open::Connected, async |client| {
            ctx.within(client.invite(&details)).await
        })
        .await?;
    let expires = std::time::UNIX_EPOCH + Duration::from_millis(invite.expires_at_ms);
    let shown = print(
        ctx.json,
        json!({ "code": invite.code, "expires_at_ms": invite.expires_at_ms, "role": role.as_str(), "user_id": user_id }),
        || {
            format!(
                "Invite for {} ({}), a new {} (one use, until {}):\n  {}\nHand it over privately: it works like a password.",
                crate::output::safe(&display_name),
                user_id,
                role.as_str(),
                humantime::format_rfc3339_seconds(expires),
                invite.code
            )
        },
    );
    crate::output::must_be_read(shown, "invite code")
}

/// Suspends `user`: the relay cuts their devices off and their groups
/// remove them.
pub async fn suspend(ctx: &Session, user: &str) -> Result<()> {
    ctx.with_client(Open::Connected, async |client| {
        ctx.within(client.suspend_user(user)).await
    })
    .await?;
    print(ctx.json, json!({ "suspended": user }), || {
        format!("{user} is suspended: their devices are cut off and removed from their groups.")
    })
}

/// Delegates to staff member `user`.
pub async fn delegate(ctx: &Session, user: &str, may_certify_staff: bool) -> Result<()> {
    ctx.with_client(Open::Connected, async |client| {
        ctx.within(client.delegate(user, may_certify_staff)).await
    })
    .await?;
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
    )
}

/// Revokes staff member `user`'s delegation.
pub async fn undelegate(ctx: &Session, user: &str) -> Result<()> {
    ctx.with_client(Open::Connected, async |client| {
        ctx.within(client.revoke_delegation(user)).await
    })
    .await?;
    print(ctx.json, json!({ "undelegated": user }), || {
        format!(
            "{user} can no longer invite; users they certified that the authority has not \
             renewed yet are refused from now on."
        )
    })
}
