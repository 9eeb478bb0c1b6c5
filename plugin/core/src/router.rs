//! Method-independent routing: which resource a path names. Paths are matched on segments;
//! SCIM endpoint names are matched case-insensitively (clients differ), ids exactly.

use crate::scim::schema::ResourceKind;

/// What a request path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/scim/v2/{connection}/…`
    Scim { connection: &'a str, endpoint: ScimEndpoint<'a> },
    /// `/admin/v1/…`
    Admin(AdminEndpoint<'a>),
    /// The admin page: `/admin` and `/admin/…` outside `/admin/v1`; the path after `/admin`.
    AdminPage(&'a str),
    /// Not ours.
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScimEndpoint<'a> {
    Users,
    User(&'a str),
    Groups,
    Group(&'a str),
    ServiceProviderConfig,
    Schemas,
    Schema(String),
    ResourceTypes,
    ResourceType(&'a str),
    /// `POST …/.search` (RFC 7644 §3.4.3): on `/Users`, `/Groups`, or the root (`None`).
    Search(Option<ResourceKind>),
    /// A path under the connection that names nothing (e.g. `/Bulk`, `/Me`).
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminEndpoint<'a> {
    Tenants,
    Roles,
    Tenant(&'a str),
    ScimConnection(&'a str),
    Users(&'a str),
    User(&'a str, &'a str),
    /// The tenant's blocks (`crate::blocks`), and one by the removed user's id.
    Blocks(&'a str),
    Block(&'a str, &'a str),
    Log(&'a str),
    /// The tenant's groups with member counts, and one group with its members (paged).
    Groups(&'a str),
    Group(&'a str, &'a str),
    /// Sign-in links of the tenant (`POST` mints one, `crate::sessions`), and one link or
    /// session by id (`DELETE` revokes it).
    Sessions(&'a str),
    Session(&'a str, &'a str),
    /// `GET /admin/v1/sign-in?t=…`: a browser opens a sign-in link.
    SignIn,
    /// `/admin/v1/session`: the caller's own browser session (`GET` who, `DELETE` sign out).
    CurrentSession,
    Unknown,
}

impl<'a> AdminEndpoint<'a> {
    /// The tenant the endpoint belongs to; `None` for the endpoints outside every tenant.
    pub fn tenant(&self) -> Option<&'a str> {
        match *self {
            AdminEndpoint::Tenant(t)
            | AdminEndpoint::ScimConnection(t)
            | AdminEndpoint::Users(t)
            | AdminEndpoint::User(t, _)
            | AdminEndpoint::Blocks(t)
            | AdminEndpoint::Block(t, _)
            | AdminEndpoint::Log(t)
            | AdminEndpoint::Groups(t)
            | AdminEndpoint::Group(t, _)
            | AdminEndpoint::Sessions(t)
            | AdminEndpoint::Session(t, _) => Some(t),
            AdminEndpoint::Tenants
            | AdminEndpoint::Roles
            | AdminEndpoint::SignIn
            | AdminEndpoint::CurrentSession
            | AdminEndpoint::Unknown => None,
        }
    }
}

/// The path prefix every SCIM URL starts with.
pub const SCIM_PREFIX: &str = "/scim/v2/";
pub const ADMIN_PREFIX: &str = "/admin/v1/";
/// The admin page's paths after `/admin` (its assets are compiled into the plugin).
pub const ADMIN_PAGE_PATHS: [&str; 5] = ["", "/", "/index.html", "/app.js", "/app.css"];

pub fn route(path: &str) -> Route<'_> {
    if let Some(rest) = path.strip_prefix(SCIM_PREFIX) {
        let mut parts = rest.trim_end_matches('/').split('/');
        let connection = parts.next().unwrap_or_default();
        let segs: Vec<&str> = parts.collect();
        let endpoint = match segs.as_slice() {
            [".search"] => ScimEndpoint::Search(None),
            [e, ".search"] if e.eq_ignore_ascii_case("Users") => {
                ScimEndpoint::Search(Some(ResourceKind::User))
            }
            [e, ".search"] if e.eq_ignore_ascii_case("Groups") => {
                ScimEndpoint::Search(Some(ResourceKind::Group))
            }
            [e] if e.eq_ignore_ascii_case("Users") => ScimEndpoint::Users,
            [e, id] if e.eq_ignore_ascii_case("Users") => ScimEndpoint::User(id),
            [e] if e.eq_ignore_ascii_case("Groups") => ScimEndpoint::Groups,
            [e, id] if e.eq_ignore_ascii_case("Groups") => ScimEndpoint::Group(id),
            [e] if e.eq_ignore_ascii_case("ServiceProviderConfig") => ScimEndpoint::ServiceProviderConfig,
            [e] if e.eq_ignore_ascii_case("Schemas") => ScimEndpoint::Schemas,
            [e, id] if e.eq_ignore_ascii_case("Schemas") => ScimEndpoint::Schema(percent_decode(id)),
            [e] if e.eq_ignore_ascii_case("ResourceTypes") => ScimEndpoint::ResourceTypes,
            [e, id] if e.eq_ignore_ascii_case("ResourceTypes") => ScimEndpoint::ResourceType(id),
            _ => ScimEndpoint::Unknown,
        };
        return Route::Scim { connection, endpoint };
    }
    if let Some(rest) = path.strip_prefix(ADMIN_PREFIX) {
        let segs: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        let endpoint = match segs.as_slice() {
            ["tenants"] => AdminEndpoint::Tenants,
            ["roles"] => AdminEndpoint::Roles,
            ["sign-in"] => AdminEndpoint::SignIn,
            ["session"] => AdminEndpoint::CurrentSession,
            ["tenants", t] => AdminEndpoint::Tenant(t),
            ["tenants", t, "scim"] => AdminEndpoint::ScimConnection(t),
            ["tenants", t, "users"] => AdminEndpoint::Users(t),
            ["tenants", t, "users", id] => AdminEndpoint::User(t, id),
            ["tenants", t, "blocks"] => AdminEndpoint::Blocks(t),
            ["tenants", t, "blocks", id] => AdminEndpoint::Block(t, id),
            ["tenants", t, "log"] => AdminEndpoint::Log(t),
            ["tenants", t, "groups"] => AdminEndpoint::Groups(t),
            ["tenants", t, "groups", id] => AdminEndpoint::Group(t, id),
            ["tenants", t, "sessions"] => AdminEndpoint::Sessions(t),
            ["tenants", t, "sessions", id] => AdminEndpoint::Session(t, id),
            _ => AdminEndpoint::Unknown,
        };
        return Route::Admin(endpoint);
    }
    if path == "/admin/v1" || path == "/scim/v2" {
        return Route::Admin(AdminEndpoint::Unknown);
    }
    // The page's own paths only: the product behind the gateway keeps the rest of /admin/.
    if let Some(rest) = path.strip_prefix("/admin") {
        if ADMIN_PAGE_PATHS.contains(&rest) {
            return Route::AdminPage(rest);
        }
    }
    Route::Other
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`); invalid escapes stay as
/// they are, invalid UTF-8 is replaced.
pub fn percent_decode_with(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(if plus_is_space && b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_decode(s: &str) -> String {
    percent_decode_with(s, false)
}

/// Query parameters, decoded. Keys keep their case; lookups are case-insensitive.
pub fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode_with(k, true), percent_decode_with(v, true))
        })
        .collect()
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let c = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            route(&format!("/scim/v2/{c}/Users")),
            Route::Scim { connection: c, endpoint: ScimEndpoint::Users }
        );
        assert_eq!(
            route(&format!("/scim/v2/{c}/users/abc/")),
            Route::Scim { connection: c, endpoint: ScimEndpoint::User("abc") }
        );
        assert_eq!(
            route(&format!("/scim/v2/{c}/Schemas/urn%3Aietf")),
            Route::Scim { connection: c, endpoint: ScimEndpoint::Schema("urn:ietf".into()) }
        );
        assert_eq!(
            route(&format!("/scim/v2/{c}")),
            Route::Scim { connection: c, endpoint: ScimEndpoint::Unknown }
        );
        assert_eq!(
            route(&format!("/scim/v2/{c}/Groups/.search")),
            Route::Scim { connection: c, endpoint: ScimEndpoint::Search(Some(ResourceKind::Group)) }
        );
        assert_eq!(
            route(&format!("/scim/v2/{c}/.search")),
            Route::Scim { connection: c, endpoint: ScimEndpoint::Search(None) }
        );
        assert_eq!(route("/admin/v1/tenants/acme/scim"), Route::Admin(AdminEndpoint::ScimConnection("acme")));
        assert_eq!(route("/admin/v1/tenants/acme"), Route::Admin(AdminEndpoint::Tenant("acme")));
        assert_eq!(route("/admin/v1/tenants/"), Route::Admin(AdminEndpoint::Tenants));
        assert_eq!(route("/admin/v1/tenants/a/users/x"), Route::Admin(AdminEndpoint::User("a", "x")));
        assert_eq!(route("/admin/v1/tenants/a/log"), Route::Admin(AdminEndpoint::Log("a")));
        assert_eq!(route("/admin/v1/tenants/a/blocks"), Route::Admin(AdminEndpoint::Blocks("a")));
        assert_eq!(route("/admin/v1/tenants/a/blocks/x"), Route::Admin(AdminEndpoint::Block("a", "x")));
        assert_eq!(route("/admin/v1/sign-in"), Route::Admin(AdminEndpoint::SignIn));
        assert_eq!(route("/admin/v1/session"), Route::Admin(AdminEndpoint::CurrentSession));
        assert_eq!(route("/admin/v1/tenants/a/sessions"), Route::Admin(AdminEndpoint::Sessions("a")));
        assert_eq!(route("/admin/v1/tenants/a/sessions/x"), Route::Admin(AdminEndpoint::Session("a", "x")));
        assert_eq!(route("/admin/"), Route::AdminPage("/"));
        assert_eq!(route("/admin"), Route::AdminPage(""));
        assert_eq!(route("/admin/app.js"), Route::AdminPage("/app.js"));
        assert_eq!(route("/administrator"), Route::Other);
        assert_eq!(route("/admin/v2/tenants/x"), Route::Other);
        assert_eq!(route("/admin/other.js"), Route::Other);
        assert_eq!(route("/other"), Route::Other);
    }

    #[test]
    fn query_decoding() {
        let p = query_params(Some("filter=userName%20eq%20%22a+b%22&aadOptscim062020&count=5"));
        assert_eq!(param(&p, "FILTER"), Some("userName eq \"a b\""));
        assert_eq!(param(&p, "aadoptscim062020"), Some(""));
        assert_eq!(param(&p, "count"), Some("5"));
        assert_eq!(percent_decode_with("%zz%4", false), "%zz%4");
    }
}
