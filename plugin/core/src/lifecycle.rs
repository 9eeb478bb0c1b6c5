//! The provisioned user's life as an explicit state machine (roles are in `crate::roles`).
//!
//! ```text
//!   POST /Users ──► Active ◄──── active=true ────┐
//!                     │                          │
//!                     └──── active=false ──► Disabled
//!   DELETE /Users/{id} from either state ──► removed (the record and every trace are deleted)
//! ```
//! Disabled users stay visible to GET and filters and keep their group memberships, so that
//! re-enabling restores access as it was (Entra does not re-send memberships).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserState {
    Active,
    Disabled,
}

/// What a SCIM request asks of a user's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// `active` was set (POST, PUT or PATCH); `true` enables, `false` disables.
    SetActive(bool),
}

impl UserState {
    /// The state a newly provisioned user starts in (`active` defaults to true).
    pub fn provisioned(active: Option<bool>) -> UserState {
        if active == Some(false) {
            UserState::Disabled
        } else {
            UserState::Active
        }
    }

    /// Every transition is allowed; repeating one is a no-op (Entra re-sends `active` on
    /// every cycle).
    pub fn on(self, event: Event) -> UserState {
        match (self, event) {
            (_, Event::SetActive(true)) => UserState::Active,
            (_, Event::SetActive(false)) => UserState::Disabled,
        }
    }

    pub fn is_active(self) -> bool {
        self == UserState::Active
    }
}

/// Where a user came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Scim,
    Local,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        assert_eq!(UserState::provisioned(None), UserState::Active);
        assert_eq!(UserState::provisioned(Some(false)), UserState::Disabled);
        let s = UserState::Active.on(Event::SetActive(false));
        assert_eq!(s, UserState::Disabled);
        assert_eq!(s.on(Event::SetActive(false)), UserState::Disabled);
        assert_eq!(s.on(Event::SetActive(true)), UserState::Active);
    }
}
