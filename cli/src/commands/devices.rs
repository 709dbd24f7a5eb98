//! `convene link` (on a new device), `convene devices` (on one already
//! enrolled) and `convene take-over` (on a restored copy): a user's own
//! devices.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use convene_client::{hex, ClientError, DeviceInfo, LinkRequest};
use serde_json::json;

use crate::output::print;
use crate::session::{Open, Session};
use crate::DevicesCommand;

/// How long `convene link` waits for the approval (the relay keeps the
/// request as long).
const APPROVAL_WAIT: Duration = Duration::from_secs(10 * 60);

/// Asks to link this device to `user` and waits for the approval.
pub async fn link(ctx: &Session, user: &str, pin_cert: Option<PathBuf>) -> Result<()> {
    if ctx.relay.is_none() {
        bail!("linking a device needs the relay's address: give --relay (the one your other device uses)");
    }
    let secret = ctx.passphrase.choose()?;
    let mut builder = ctx.builder().new_passphrase(&secret)?;
    if let Some(path) = pin_cert {
        let pem = std::fs::read(&path)
            .with_context(|| format!("cannot read the certificate {}", path.display()))?;
        builder = builder.pinned_certificate_pem(pem);
    }
    let pending = builder.request_link(user).await?;
    let code = pending.code();
    let shown = print(
        ctx.json,
        json!({ "code": code, "expires_at_ms": pending.expires_at_ms() }),
        || {
            format!(
                "To link this device, run `convene devices approve` on one of your other devices \
                 and type this code there:\n  {code}\n\
                 Keep the code to yourself: it is what proves each device to the other. \
                 Waiting up to ten minutes..."
            )
        },
    );
    crate::output::must_be_read(shown, "link code")?;
    let identity = pending.wait_for_approval(APPROVAL_WAIT).await?;
    crate::paths::remember_relay(&ctx.state_dir, &identity.relay_url)?;
    print(ctx.json, crate::output::identity(&identity), || {
        format!(
            "Linked as {} ({}). This device joins your groups as your other device adds it.",
            identity.user_id,
            crate::output::safe(&identity.display_name)
        )
    })
}

/// Lists, approves or removes this user's devices.
pub async fn devices(ctx: &Session, command: Option<DevicesCommand>) -> Result<()> {
    ctx.with_client(Open::Connected, async |client| match command {
        None => {
            let devices = ctx.within(client.devices()).await?;
            let waiting = ctx.within(client.link_requests()).await?;
            print(ctx.json, listing_json(&devices, &waiting), || {
                listing_text(&devices, &waiting)
            })
        }
        Some(DevicesCommand::Approve { code }) => {
            // Typed at a prompt, the secret digits stay out of the
            // shell's history and the process list.
            let code = match code.is_empty() {
                true => read_code()?,
                false => zeroize::Zeroizing::new(code.join(" ")),
            };
            let device = ctx.within(client.approve_link(&code)).await?;
            print(ctx.json, json!({ "linked": hex(&device) }), || {
                format!(
                    "Linked device {}: it is now in all your groups.",
                    short(&device)
                )
            })
        }
        Some(DevicesCommand::Remove { device }) => {
            let devices = ctx.within(client.devices()).await?;
            let found = find_device(&devices, &device)?;
            ctx.within(client.remove_device(&found.device)).await?;
            print(ctx.json, json!({ "removed": hex(&found.device) }), || {
                format!(
                    "Removed device {}: it is cut off and out of all your groups.",
                    short(&found.device)
                )
            })
        }
    })
    .await
}

fn find_device<'a>(devices: &'a [DeviceInfo], prefix: &str) -> Result<&'a DeviceInfo> {
    let prefix = prefix.trim().to_ascii_lowercase();
    let matching: Vec<_> = devices
        .iter()
        .filter(|d| !prefix.is_empty() && hex(&d.device).starts_with(&prefix))
        .collect();
    match matching.as_slice() {
        [one] if one.this_device => {
            bail!("that is this device; remove it from another of your devices")
        }
        [one] => Ok(one),
        [] => bail!("none of your devices has a key starting with {prefix:?}"),
        _ => bail!("several of your devices start with {prefix:?}; give more of the key"),
    }
}

fn short(device: &[u8]) -> String {
    hex(device).chars().take(16).collect()
}

fn listing_json(devices: &[DeviceInfo], waiting: &[LinkRequest]) -> serde_json::Value {
    json!({
        "devices": devices.iter().map(|d| json!({
            "device": hex(&d.device),
            "created_at_ms": d.created_at_ms,
            "this_device": d.this_device,
        })).collect::<Vec<_>>(),
        "waiting": waiting.iter().map(|l| json!({
            "device": hex(&l.device),
            "code_start": l.code_start,
            "expires_at_ms": l.expires_at_ms,
        })).collect::<Vec<_>>(),
    })
}

/// The link code: asked for at a terminal (hidden as it is typed), or the
/// first line of standard input when it comes from a pipe.
fn read_code() -> Result<zeroize::Zeroizing<String>> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        return Ok(zeroize::Zeroizing::new(
            rpassword::prompt_password("Code shown on the new device: ")
                .context("cannot read the code")?,
        ));
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the code from standard input")?;
    if line.trim().is_empty() {
        anyhow::bail!(
            "no code: give the 12 digits the new device shows as arguments, or run in a \
             terminal to be asked"
        );
    }
    Ok(zeroize::Zeroizing::new(line.trim().to_string()))
}

fn listing_text(devices: &[DeviceInfo], waiting: &[LinkRequest]) -> String {
    let mut lines: Vec<String> = devices
        .iter()
        .map(|d| {
            let marker = if d.this_device { "  (this device)" } else { "" };
            let since = std::time::UNIX_EPOCH + Duration::from_millis(d.created_at_ms);
            format!(
                "{}  enrolled {}{marker}",
                short(&d.device),
                humantime::format_rfc3339_seconds(since)
            )
        })
        .collect();
    for link in waiting {
        lines.push(format!(
            "waiting to be linked: {}  code starting {}",
            short(&link.device),
            link.code_start
        ));
    }
    lines.join("\n")
}

/// Makes this copy of the device the one the relay accepts, if the relay
/// refused it as a copy; a device the relay accepts has nothing to take.
pub async fn take_over(ctx: &Session) -> Result<()> {
    let taken = ctx
        .with_client(Open::Stored, async |client| {
            match client.wait_caught_up(ctx.timeout).await {
                Ok(()) => return Ok(false),
                Err(ClientError::StateCopied) => {}
                Err(err) => return Err(err.into()),
            }
            client.take_over().await?;
            client.wait_caught_up(ctx.timeout).await?;
            Ok(true)
        })
        .await?;
    print(ctx.json, json!({ "taken_over": taken }), || {
        if taken {
            "This copy of the device is now the one in use; any other copy is refused. \
             Groups it had fallen behind in are being rejoined: another member must be \
             online to add it back, and what was sent meanwhile cannot be read."
                .into()
        } else {
            "Nothing to do: the relay accepts this device's state as the one in use.".into()
        }
    })
}
