//! What a tampered client could send, for tests that check that every
//! other client refuses it. Built only with the `testing` feature: an
//! honest client never sends content its own checks would refuse.

use convene_proto::content::content;

use super::Client;
use crate::engine::{content_intent, Shown};
use crate::error::ClientError;
use crate::types::{GroupId, MessageKind};

impl Client {
    /// Sends `body` in `group` as it is, with none of the checks the
    /// client's own operations make (ids, nonces, who may send it where).
    /// This device keeps it as a plain text with no effect on its own
    /// state.
    ///
    /// Errors: as any send (`UnknownGroup`, transport errors).
    pub async fn send_unchecked_for_adversarial_tests(
        &self,
        group: &GroupId,
        body: content::Body,
    ) -> Result<(), ClientError> {
        let shown = Shown {
            kind: MessageKind::Text,
            text: String::new(),
            request: None,
            passed_on_from: None,
        };
        self.submit(content_intent(group, body, shown)).await?;
        Ok(())
    }
}
