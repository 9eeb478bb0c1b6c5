//! The names of the stats a host exports (Envoy: `/stats`, `/stats/prometheus`), chosen here
//! so that every host counts the same things under the same names. A name never carries a
//! tenant, a connection id, a user attribute or a secret: only the operation, the status
//! class and fixed words.
//!
//! ```text
//! scim_edge.scim.<operation>.<class>     SCIM requests   (operation: users_list, users_create,
//!                                        user_get, user_replace, user_update, user_delete, the
//!                                        same for groups, search, discovery, unknown;
//!                                        class: 2xx 3xx 4xx 5xx)
//! scim_edge.admin.<operation>.<class>    admin API and page requests (operation: read, write, page)
//! scim_edge.signin_refused               SCIM requests refused at sign-in (401)
//! scim_edge.rate_limited                 SCIM requests refused by the tenant's rate limit (429)
//! scim_edge.edge.<decision>              guarded requests (crate::edge::Decision::metric):
//!                                        allowed, passed_unmarked, unavailable,
//!                                        denied.{unauthenticated,unknown,disabled,blocked}
//! scim_edge.edge.cache_hit / cache_miss  guarded requests answered from the worker's cache / not
//! scim_edge.store.callouts               store calls sent (etcd callouts)
//! scim_edge.store.callout_failures       store calls that failed (no answer, or a 5xx)
//! scim_edge.store.callout_ms             histogram: each store call's latency in milliseconds
//! ```

use http::Method;

use crate::router::{self, AdminEndpoint, Route, ScimEndpoint};

pub const SIGNIN_REFUSED: &str = "scim_edge.signin_refused";
pub const RATE_LIMITED: &str = "scim_edge.rate_limited";
pub const EDGE_CACHE_HIT: &str = "scim_edge.edge.cache_hit";
pub const EDGE_CACHE_MISS: &str = "scim_edge.edge.cache_miss";
pub const STORE_CALLOUTS: &str = "scim_edge.store.callouts";
pub const STORE_CALLOUT_FAILURES: &str = "scim_edge.store.callout_failures";
pub const STORE_CALLOUT_MS: &str = "scim_edge.store.callout_ms";

fn class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn scim_operation(endpoint: &ScimEndpoint<'_>, m: &Method) -> &'static str {
    match (endpoint, m.as_str()) {
        (ScimEndpoint::Users, "GET") => "users_list",
        (ScimEndpoint::Users, "POST") => "users_create",
        (ScimEndpoint::User(_), "GET") => "user_get",
        (ScimEndpoint::User(_), "PUT") => "user_replace",
        (ScimEndpoint::User(_), "PATCH") => "user_update",
        (ScimEndpoint::User(_), "DELETE") => "user_delete",
        (ScimEndpoint::Groups, "GET") => "groups_list",
        (ScimEndpoint::Groups, "POST") => "groups_create",
        (ScimEndpoint::Group(_), "GET") => "group_get",
        (ScimEndpoint::Group(_), "PUT") => "group_replace",
        (ScimEndpoint::Group(_), "PATCH") => "group_update",
        (ScimEndpoint::Group(_), "DELETE") => "group_delete",
        (ScimEndpoint::Search(_), _) => "search",
        (
            ScimEndpoint::ServiceProviderConfig
            | ScimEndpoint::Schemas
            | ScimEndpoint::Schema(_)
            | ScimEndpoint::ResourceTypes
            | ScimEndpoint::ResourceType(_),
            _,
        ) => "discovery",
        _ => "unknown",
    }
}

/// The stats one answered SCIM or admin request counts in (empty for other paths).
pub fn request(path: &str, method: &Method, status: u16) -> Vec<String> {
    let mut out = Vec::new();
    match router::route(path) {
        Route::Scim { endpoint, .. } => {
            out.push(format!("scim_edge.scim.{}.{}", scim_operation(&endpoint, method), class(status)));
            match status {
                401 => out.push(SIGNIN_REFUSED.to_owned()),
                429 => out.push(RATE_LIMITED.to_owned()),
                _ => {}
            }
        }
        Route::Admin(endpoint) => {
            let op = match (endpoint, method.as_str()) {
                (AdminEndpoint::Unknown, _) => "unknown",
                (_, "GET" | "HEAD") => "read",
                _ => "write",
            };
            out.push(format!("scim_edge.admin.{op}.{}", class(status)));
        }
        Route::AdminPage(_) => out.push(format!("scim_edge.admin.page.{}", class(status))),
        Route::Other => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_operation_and_class_never_an_id() {
        let id = "0123456789abcdef0123456789abcdef";
        let users = format!("/scim/v2/{id}/Users");
        assert_eq!(request(&users, &Method::POST, 201), vec!["scim_edge.scim.users_create.2xx"]);
        assert_eq!(
            request(&format!("{users}/{id}"), &Method::PATCH, 401),
            vec!["scim_edge.scim.user_update.4xx", SIGNIN_REFUSED]
        );
        assert_eq!(request(&users, &Method::GET, 429), vec!["scim_edge.scim.users_list.4xx", RATE_LIMITED]);
        assert_eq!(
            request(&format!("/scim/v2/{id}/Schemas"), &Method::GET, 200),
            vec!["scim_edge.scim.discovery.2xx"]
        );
        assert_eq!(
            request("/admin/v1/tenants/acme/users/x", &Method::DELETE, 503),
            vec!["scim_edge.admin.write.5xx"]
        );
        assert_eq!(request("/admin/", &Method::GET, 200), vec!["scim_edge.admin.page.2xx"]);
        assert!(request("/app", &Method::GET, 200).is_empty());
        for name in request(&format!("{users}/{id}"), &Method::GET, 200) {
            assert!(!name.contains(id), "{name}");
        }
    }
}
