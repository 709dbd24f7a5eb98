//! Runs the calls of asking the network for help (`ask`, `ask close`,
//! `requests`, `requests show`, `offer`) and answers with their shapes.

use std::time::Duration;

use anyhow::Result;
use convene_client::help::{Request, RequestFilter};
use convene_client::{AskDraft, Client};
use convene_proto::vocabulary::{Region, Sector};
use serde_json::Value;

use crate::call::Call;
use crate::execute::{invalid, sync_directory, Ops};
use crate::shapes::{MessageShape, RequestShape};

/// Runs one of the calls of asking the network.
pub async fn execute(ops: &Ops<'_>, client: &Client, call: &Call) -> Result<Value> {
    match call {
        Call::Ask {
            title,
            text,
            topics,
            sectors,
            regions,
            days,
            via_staff,
        } => {
            ask(
                ops, client, title, text, topics, sectors, regions, *days, via_staff,
            )
            .await
        }
        Call::AskClose { request } => close(ops, client, request).await,
        Call::Requests { all, mine } => list(ops, client, *all, *mine).await,
        Call::RequestsShow { request } => show(ops, client, request).await,
        Call::Offer { request, text } => offer(ops, client, request, text).await,
        other => anyhow::bail!("{} is not a call of asking the network", other.method()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn ask(
    ops: &Ops<'_>,
    client: &Client,
    title: &str,
    text: &str,
    topics: &[String],
    sectors: &[String],
    regions: &[String],
    days: Option<u32>,
    via_staff: &Option<String>,
) -> Result<Value> {
    let draft = AskDraft {
        title: title.to_string(),
        text: text.to_string(),
        topics: topics.to_vec(),
        sectors: sectors
            .iter()
            .map(|s| Sector::parse(s))
            .collect::<Result<_, _>>()
            .map_err(invalid)?,
        regions: regions
            .iter()
            .map(|r| Region::parse(r))
            .collect::<Result<_, _>>()
            .map_err(invalid)?,
        lifetime: days.map(|d| Duration::from_secs(u64::from(d) * 24 * 3600)),
        through_staff: via_staff.clone(),
    };
    if via_staff.is_some() {
        // The staff member must be known to be staff: a fresh directory.
        sync_directory(ops, client).await;
    }
    let request = ops.within(client.ask(draft)).await?;
    shape(client, &request)
}

async fn close(ops: &Ops<'_>, client: &Client, request: &str) -> Result<Value> {
    let found = client.find_request(request)?;
    let closed = ops.within(client.close_request(&found.id)).await?;
    shape(client, &closed)
}

async fn list(ops: &Ops<'_>, client: &Client, all: bool, mine: bool) -> Result<Value> {
    sync_directory(ops, client).await;
    let filter = RequestFilter {
        include_closed: all,
        only_mine: mine,
    };
    let now = convene_proto::now_ms();
    let names = names(client);
    let shapes: Vec<RequestShape> = client
        .requests(filter)?
        .iter()
        .map(|r| RequestShape::new(r, now, &names))
        .collect();
    Ok(serde_json::to_value(shapes)?)
}

async fn show(ops: &Ops<'_>, client: &Client, request: &str) -> Result<Value> {
    sync_directory(ops, client).await;
    shape(client, &client.find_request(request)?)
}

async fn offer(ops: &Ops<'_>, client: &Client, request: &str, text: &str) -> Result<Value> {
    let found = client.find_request(request)?;
    let message = ops.within(client.offer(&found.id, text)).await?;
    let group = client.group(&message.group)?;
    Ok(serde_json::to_value(MessageShape::new(
        &message,
        group.as_ref(),
    ))?)
}

/// How people are shown: their certified name and user id, or the id.
fn names(client: &Client) -> impl Fn(&str) -> String + '_ {
    move |user: &str| match client.person(user) {
        Ok(Some(person)) => format!("{} ({})", person.display_name, person.user_id),
        _ => user.to_string(),
    }
}

fn shape(client: &Client, request: &Request) -> Result<Value> {
    let names = names(client);
    Ok(serde_json::to_value(RequestShape::new(
        request,
        convene_proto::now_ms(),
        &names,
    ))?)
}
