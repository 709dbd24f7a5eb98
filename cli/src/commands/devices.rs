//! A user's own devices, where more than a call is needed: `convene link`
//! on a new device, and reading the code for `convene devices approve`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use convene_client::ClientBuilder;
use serde_json::json;

use crate::call::Call;
use crate::output::print;
use crate::session::Session;
use crate::shapes::IdentityShape;

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
    let pending = builder.clone().request_link(user).await?;
    let code = pending.code();
    let shown = print(
        ctx.json,
        &json!({ "code": code, "expires_at_ms": pending.expires_at_ms() }),
        || {
            Ok(format!(
                "To link this device, run `convene devices approve` on one of your other devices \
                 and type this code there:\n  {code}\n\
                 Keep the code to yourself: it is what proves each device to the other. \
                 Waiting up to ten minutes..."
            ))
        },
    );
    crate::output::must_be_read(shown, "link code")?;
    let identity = pending.wait_for_approval(APPROVAL_WAIT).await?;
    crate::paths::remember_relay(&ctx.state_dir, &identity.relay_url)?;
    name_after_host(ctx, builder).await;
    let shape = IdentityShape::from(&identity);
    print(ctx.json, &serde_json::to_value(&shape)?, || {
        Ok(format!(
            "Linked as {} ({}). This device joins your groups as your other device adds it.",
            shape.user_id,
            crate::output::safe(&shape.display_name)
        ))
    })
}

/// Links the new device whose code is `code`, or the code read at the
/// prompt or from standard input.
pub async fn approve(ctx: &Session, code: Vec<String>) -> Result<()> {
    // Typed at a prompt, the secret digits stay out of the shell's
    // history and the process list.
    let code = match code.is_empty() {
        true => read_code()?,
        false => zeroize::Zeroizing::new(code.join(" ")),
    };
    ctx.run_call(Call::DevicesApprove {
        code: code.to_string(),
    })
    .await
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

/// Names a device that just enrolled or linked after its computer, so that
/// its user's other devices can tell it apart. A failure leaves it unnamed
/// and says how to name it; the enrolment stands either way.
pub(crate) async fn name_after_host(ctx: &Session, builder: ClientBuilder) {
    let Some(host) = host_name() else {
        return;
    };
    let named = async {
        let client = builder.open().await?;
        let named = tokio::time::timeout(ctx.timeout, async {
            client.wait_caught_up(ctx.timeout).await?;
            client.set_device_name(&host).await
        })
        .await;
        client.shutdown().await;
        match named {
            Ok(result) => Ok(result?),
            Err(_) => Err(crate::execute::not_confirmed(ctx.timeout)),
        }
    };
    let named: Result<()> = named.await;
    if let Err(err) = named {
        crate::output::note(&format!(
            "this device is not named for your other devices yet ({}); \
             `convene devices name <name>` names it",
            crate::output::chain_text(&err)
        ));
    }
}

/// This computer's host name, as a device name: `None` if there is none
/// that would do.
fn host_name() -> Option<String> {
    let host = nix::unistd::gethostname().ok()?;
    let host = host.to_string_lossy();
    let host: String = host
        .trim()
        .chars()
        .take(convene_client::MAX_DEVICE_NAME_CHARS)
        .collect();
    let usable = !host.is_empty() && !host.chars().any(convene_proto::text::is_hidden);
    usable.then_some(host)
}
