//! This device and its account, before or beside a client: `ping`,
//! `enrol` and `passphrase`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use convene_client::{ClientBuilder, ClientError, ConnectOptions, RelayConnection};
use convene_proto::relay::{request, Ping};
use serde_json::json;

use crate::output::{self, print};
use crate::passphrase;
use crate::session::Session;
use crate::shapes::IdentityShape;

/// The relay a new device enrols with when none is named.
const DEFAULT_RELAY: &str = "ws://127.0.0.1:7420";

/// Measures one round trip to the relay named, remembered or default.
pub async fn ping(ctx: &Session) -> Result<()> {
    let url = ctx
        .relay
        .clone()
        .or_else(|| crate::paths::remembered_relay(&ctx.state_dir))
        .unwrap_or_else(|| DEFAULT_RELAY.to_string());
    let started = Instant::now();
    // As a client error, so that it has the code every other command
    // gives (`relay_unreachable`).
    let conn = RelayConnection::connect(&url, &ConnectOptions::default())
        .await
        .map_err(ClientError::from)?;
    let answered = conn.request(request::Kind::Ping(Ping {})).await;
    let ms = started.elapsed().as_millis();
    conn.close().await;
    answered.map_err(ClientError::from)?;
    print(
        ctx.json,
        &json!({ "relay": url, "round_trip_ms": ms }),
        || Ok(format!("relay at {url} answered in {ms} ms")),
    )
}

/// Enrols this device with an invite.
pub async fn enrol(
    ctx: &Session,
    invite: &str,
    user_id: Option<String>,
    name: Option<String>,
    pin_cert: Option<PathBuf>,
) -> Result<()> {
    // The invite names its relay; --relay overrides it.
    let secret = ctx.passphrase.choose()?;
    let mut builder = ClientBuilder::new(&ctx.state_dir).new_passphrase(&secret)?;
    if let Some(url) = &ctx.relay {
        builder = builder.relay_url(url);
    }
    if let Some(path) = pin_cert {
        let pem = std::fs::read(&path)
            .with_context(|| format!("cannot read the certificate {}", path.display()))?;
        builder = builder.pinned_certificate_pem(pem);
    }
    let user_id = user_id.unwrap_or_default();
    let name = name.unwrap_or_default();
    let identity = builder.clone().enrol(invite, &user_id, &name).await?;
    crate::paths::remember_relay(&ctx.state_dir, &identity.relay_url)?;
    super::devices::name_after_host(ctx, builder).await;
    let shape = IdentityShape::from(&identity);
    print(ctx.json, &serde_json::to_value(&shape)?, || {
        Ok(format!(
            "Enrolled as {} ({}), {}. State kept in {}.",
            shape.user_id,
            output::safe(&shape.display_name),
            shape.role,
            ctx.state_dir.display()
        ))
    })
}

/// Changes the passphrase that encrypts this device's state.
pub async fn change_passphrase(ctx: &Session) -> Result<()> {
    ctx.no_daemon("change the passphrase").await?;
    let builder = ctx.unlock().await?;
    if !builder.is_enrolled().await? {
        return Err(ClientError::NotEnrolled.into());
    }
    let new_secret = passphrase::read_new()?;
    builder.change_passphrase(&new_secret).await?;
    print(ctx.json, &json!({ "changed": true }), || {
        Ok("The passphrase is changed: use the new one from now on.".into())
    })
}
