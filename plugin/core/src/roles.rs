//! Roles and what they allow in the admin API. SCIM never reads or writes a role: every
//! SCIM-provisioned user starts as [`USER`], and only the product's administrators change it.

use serde_json::{json, Value};

use crate::error::ScimError;
use crate::Config;

/// The base role every SCIM-provisioned user gets.
pub const USER: &str = "user";
pub const ADMINISTRATOR: &str = "administrator";
pub const SYSTEM_TECHNICIAN: &str = "system_technician";
pub const BUILTIN: [&str; 3] = [USER, ADMINISTRATOR, SYSTEM_TECHNICIAN];

/// What an acting user may do through the admin API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// See the tenant, its users and the provisioning log.
    ViewUsers,
    /// Generate, regenerate, view or revoke the SCIM connection.
    ManageScim,
    /// Change roles, remove users, change the tenant.
    ManageUsers,
}

impl Permission {
    pub fn name(self) -> &'static str {
        match self {
            Permission::ViewUsers => "viewUsers",
            Permission::ManageScim => "manageScim",
            Permission::ManageUsers => "manageUsers",
        }
    }

    /// The roles that hold this permission, for error details.
    fn holders(self) -> &'static str {
        match self {
            Permission::ViewUsers | Permission::ManageScim => "the administrator or system_technician role",
            Permission::ManageUsers => "the administrator role",
        }
    }
}

pub fn permissions(role: &str) -> &'static [Permission] {
    match role {
        ADMINISTRATOR => &[Permission::ViewUsers, Permission::ManageScim, Permission::ManageUsers],
        SYSTEM_TECHNICIAN => &[Permission::ViewUsers, Permission::ManageScim],
        _ => &[],
    }
}

pub fn valid_name(r: &str) -> bool {
    (1..=32).contains(&r.len())
        && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `role` can be given to a user under this configuration.
pub fn exists(config: &Config, role: &str) -> bool {
    BUILTIN.contains(&role) || config.extra_roles.iter().any(|r| r == role)
}

/// 403 unless `role` holds `p`; the detail says which role is needed.
pub fn require(role: &str, user_name: &str, p: Permission, action: &str) -> Result<(), ScimError> {
    if permissions(role).contains(&p) {
        Ok(())
    } else {
        Err(ScimError::forbidden(format!(
            "{action} needs {}; the acting user {user_name:?} has the {role:?} role",
            p.holders()
        )))
    }
}

/// Every role, for `GET /admin/v1/roles`.
pub fn all(config: &Config) -> Value {
    let role = |name: &str, builtin: bool| {
        let perms: Vec<&str> = permissions(name).iter().map(|p| p.name()).collect();
        json!({"name": name, "builtin": builtin, "permissions": perms})
    };
    let mut roles: Vec<Value> = BUILTIN.iter().map(|r| role(r, true)).collect();
    roles.extend(config.extra_roles.iter().map(|r| role(r, false)));
    json!({ "roles": roles })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_do_what() {
        assert!(require(ADMINISTRATOR, "a", Permission::ManageUsers, "x").is_ok());
        assert!(require(SYSTEM_TECHNICIAN, "a", Permission::ManageScim, "x").is_ok());
        let e = require(SYSTEM_TECHNICIAN, "tech", Permission::ManageUsers, "changing a role").unwrap_err();
        assert_eq!(e.status, http::StatusCode::FORBIDDEN);
        assert!(e.detail.contains("needs the administrator role"), "{}", e.detail);
        let e = require(USER, "u", Permission::ManageScim, "generating").unwrap_err();
        assert!(e.detail.contains("administrator or system_technician"), "{}", e.detail);
        assert!(require("auditor", "a", Permission::ViewUsers, "x").is_err());
        let c = Config { extra_roles: vec!["auditor".into()], ..Config::default() };
        assert!(exists(&c, "auditor") && exists(&c, USER) && !exists(&c, "root"));
        assert_eq!(all(&c)["roles"].as_array().map(Vec::len), Some(4));
    }
}
