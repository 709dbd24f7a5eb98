//! The relay's directory of users, as the app reads it.

use convene_proto::relay::{request, response, ErrorCode, GetUser, ListUsers};

use super::Client;
use crate::error::ClientError;
use crate::types::{Role, UserInfo};

impl Client {
    /// Looks a user up in the relay's directory.
    pub async fn lookup_user(&self, user_id: &str) -> Result<UserInfo, ClientError> {
        let request = request::Kind::GetUser(GetUser {
            user_id: user_id.to_string(),
        });
        match self.relay(request).await {
            Ok(response::Result::User(user)) => Ok(user_info(user)),
            Ok(_) => Err(ClientError::unexpected_response()),
            Err(ClientError::Refused(r))
                if matches!(r.code, ErrorCode::NotFound | ErrorCode::InvalidArgument) =>
            {
                Err(ClientError::UnknownUser(user_id.to_string()))
            }
            Err(err) => Err(err),
        }
    }

    /// Every user in the relay's directory.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>, ClientError> {
        let mut users = Vec::new();
        loop {
            let after = users
                .last()
                .map(|u: &UserInfo| u.user_id.clone())
                .unwrap_or_default();
            let request = request::Kind::ListUsers(ListUsers {
                after_user_id: after,
                limit: 0,
            });
            let page = match self.relay(request).await? {
                response::Result::UserList(page) => page,
                _ => return Err(ClientError::unexpected_response()),
            };
            let more = page.more && !page.users.is_empty();
            users.extend(page.users.into_iter().map(user_info));
            if !more {
                return Ok(users);
            }
        }
    }

    /// Fails with [`ClientError::UnknownUser`] unless every user exists.
    pub(super) async fn check_users(&self, users: &[String]) -> Result<(), ClientError> {
        for user in users {
            if user != self.user_id() {
                self.lookup_user(user).await?;
            }
        }
        Ok(())
    }
}

fn user_info(user: convene_proto::relay::User) -> UserInfo {
    UserInfo {
        user_id: user.user_id,
        display_name: user.display_name,
        role: Role::from_wire(user.role),
        devices: user
            .devices
            .into_iter()
            .map(|d| d.device_key.to_vec())
            .collect(),
    }
}
