#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)] // test code: a failed unwrap is a failed test
//! Property tests.
//!
//! 1. Filters: for any generated AST, printing and parsing gives the same AST back.
//! 2. The directory: any sequence of SCIM and admin operations on two tenants (create, PATCH,
//!    PUT and delete of users and groups, renames into case-insensitive collisions,
//!    disable/enable, member add/remove in both Entra dialects, regenerate) gets the statuses
//!    a simple model predicts; afterwards the API's view of every tenant equals the model and
//!    `consistency::check` finds nothing wrong with the store.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use scim_edge_core::scim::filter::{self, AttrPath, CompValue, CompareOp, Filter};
use serde_json::{json, Value};
use support::{patch, Host, Tenant};

// ---------------------------------------------------------------------------------------
// 1. Filter print/parse round trip
// ---------------------------------------------------------------------------------------

fn attr_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "userName", "externalId", "displayName", "emails", "members", "value", "type", "active",
            "meta", "name", "manager", "not", "and", "or", "pr", "eq", "true", "null", "$ref",
        ])
        .prop_map(str::to_owned),
        1 => "[a-zA-Z][a-zA-Z0-9_-]{0,10}",
    ]
}

fn attr_path(sub: bool) -> impl Strategy<Value = AttrPath> {
    let urn = prop::option::weighted(
        0.2,
        prop::sample::select(vec![
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:acme:ext:1.0:User",
        ]),
    );
    let sub = if sub { prop::option::weighted(0.3, attr_name()).boxed() } else { Just(None).boxed() };
    (urn, attr_name(), sub).prop_map(|(urn, name, sub)| AttrPath { urn: urn.map(str::to_owned), name, sub })
}

fn comp_value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        3 => any::<String>().prop_map(CompValue::Str),
        1 => prop::sample::select(vec!["", "true", "42", "and", "a\"b\\c", "\u{0}\u{1f}\u{7f}", "2026-01-01T00:00:00Z"])
            .prop_map(|s| CompValue::Str(s.to_owned())),
        1 => any::<i64>().prop_map(|n| CompValue::Num(n.into())),
        1 => any::<u64>().prop_map(|n| CompValue::Num(n.into())),
        1 => any::<f64>().prop_filter_map("finite", serde_json::Number::from_f64).prop_map(CompValue::Num),
        1 => any::<bool>().prop_map(CompValue::Bool),
        1 => Just(CompValue::Null),
    ]
}

fn compare_op() -> impl Strategy<Value = CompareOp> {
    use CompareOp::*;
    prop::sample::select(vec![Eq, Ne, Co, Sw, Ew, Gt, Ge, Lt, Le])
}

fn atom(sub: bool) -> BoxedStrategy<Filter> {
    prop_oneof![
        attr_path(sub).prop_map(Filter::Present),
        (attr_path(sub), compare_op(), comp_value()).prop_map(|(p, o, v)| Filter::Compare(p, o, v)),
    ]
    .boxed()
}

/// Filters without value paths (what may stand inside `[…]`).
fn plain_filter() -> impl Strategy<Value = Filter> {
    atom(true).prop_recursive(5, 32, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

fn value_path() -> impl Strategy<Value = Filter> {
    let then = prop::option::weighted(
        0.3,
        prop_oneof![
            attr_name().prop_map(|n| Filter::Present(AttrPath::new(n))),
            (attr_name(), compare_op(), comp_value()).prop_map(|(n, o, v)| Filter::Compare(
                AttrPath::new(n),
                o,
                v
            )),
        ],
    );
    (attr_path(false), plain_filter(), then).prop_map(|(attr, inner, then)| Filter::ValuePath {
        attr,
        inner: Box::new(inner),
        then: then.map(Box::new),
    })
}

fn any_filter() -> impl Strategy<Value = Filter> {
    prop_oneof![3 => atom(true), 1 => value_path()].prop_recursive(5, 48, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn filters_print_and_parse_back(f in any_filter()) {
        let printed = f.to_string();
        let parsed = filter::parse(&printed);
        prop_assert_eq!(parsed.as_ref(), Ok(&f), "printed as {}", printed);
    }
}

// ---------------------------------------------------------------------------------------
// 2. Operations against a model
// ---------------------------------------------------------------------------------------

const USER_NAMES: [&str; 7] = ["alice", "Alice", "ALICE", "bob", "carol", "eve@x.example", "Eve@X.example"];
const EXTERNAL_IDS: [&str; 4] = ["e1", "E1", "e2", "e3"];
const GROUP_NAMES: [&str; 4] = ["Staff", "staff", "Ops", "Dev"];

#[derive(Clone, Debug)]
enum Op {
    CreateUser {
        name: usize,
        ext: Option<usize>,
    },
    RenameUser {
        user: usize,
        name: usize,
    },
    SetExternalId {
        user: usize,
        ext: Option<usize>,
    },
    /// Entra's default dialect sends `"False"`, the flag dialect `false`.
    SetActive {
        user: usize,
        active: bool,
        as_string: bool,
    },
    PutUser {
        user: usize,
        name: usize,
        ext: Option<usize>,
        active: bool,
    },
    DeleteUser {
        user: usize,
    },
    CreateGroup {
        name: usize,
        members: Vec<usize>,
    },
    RenameGroup {
        group: usize,
        name: usize,
    },
    AddMembers {
        group: usize,
        users: Vec<usize>,
    },
    /// `Remove members` with a value list (default dialect).
    RemoveMembers {
        group: usize,
        users: Vec<usize>,
    },
    /// `remove members[value eq "…"]` (flag dialect).
    RemoveMemberByFilter {
        group: usize,
        user: usize,
    },
    PutGroup {
        group: usize,
        name: usize,
        members: Vec<usize>,
    },
    DeleteGroup {
        group: usize,
    },
    Regenerate,
}

fn op() -> impl Strategy<Value = (usize, Op)> {
    let i = || 0usize..8;
    let list = || prop::collection::vec(0usize..8, 0..4);
    let ext = || prop::option::of(0usize..EXTERNAL_IDS.len());
    let op = prop_oneof![
        4 => (0usize..USER_NAMES.len(), ext()).prop_map(|(name, ext)| Op::CreateUser { name, ext }),
        2 => (i(), 0usize..USER_NAMES.len()).prop_map(|(user, name)| Op::RenameUser { user, name }),
        1 => (i(), ext()).prop_map(|(user, ext)| Op::SetExternalId { user, ext }),
        2 => (i(), any::<bool>(), any::<bool>()).prop_map(|(user, active, as_string)| Op::SetActive { user, active, as_string }),
        1 => (i(), 0usize..USER_NAMES.len(), ext(), any::<bool>())
            .prop_map(|(user, name, ext, active)| Op::PutUser { user, name, ext, active }),
        1 => i().prop_map(|user| Op::DeleteUser { user }),
        2 => (0usize..GROUP_NAMES.len(), list()).prop_map(|(name, members)| Op::CreateGroup { name, members }),
        1 => (i(), 0usize..GROUP_NAMES.len()).prop_map(|(group, name)| Op::RenameGroup { group, name }),
        3 => (i(), list()).prop_map(|(group, users)| Op::AddMembers { group, users }),
        2 => (i(), list()).prop_map(|(group, users)| Op::RemoveMembers { group, users }),
        1 => (i(), i()).prop_map(|(group, user)| Op::RemoveMemberByFilter { group, user }),
        1 => (i(), 0usize..GROUP_NAMES.len(), list()).prop_map(|(group, name, members)| Op::PutGroup { group, name, members }),
        1 => i().prop_map(|group| Op::DeleteGroup { group }),
        1 => Just(Op::Regenerate),
    ];
    (0usize..2, op)
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MUser {
    id: String,
    user_name: String,
    external_id: Option<String>,
    active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MGroup {
    id: String,
    name: String,
    members: BTreeSet<String>,
}

/// One tenant as the model sees it; users and groups in creation order.
struct Model {
    t: Tenant,
    users: Vec<MUser>,
    groups: Vec<MGroup>,
    /// Whether the config key `uniqueness` makes externalId and group displayName unique.
    unique: bool,
}

impl Model {
    fn user(&self, i: usize) -> Option<MUser> {
        (!self.users.is_empty()).then(|| self.users[i % self.users.len()].clone())
    }
    fn group(&self, i: usize) -> Option<MGroup> {
        (!self.groups.is_empty()).then(|| self.groups[i % self.groups.len()].clone())
    }
    fn name_taken(&self, name: &str, except: Option<&str>) -> bool {
        self.users
            .iter()
            .any(|u| Some(u.id.as_str()) != except && u.user_name.to_lowercase() == name.to_lowercase())
    }
    fn ext_taken(&self, ext: Option<&str>, except: Option<&str>) -> bool {
        self.unique
            && ext.is_some_and(|e| {
                self.users
                    .iter()
                    .any(|u| Some(u.id.as_str()) != except && u.external_id.as_deref() == Some(e))
            })
    }
    fn group_taken(&self, name: &str, except: Option<&str>) -> bool {
        self.unique
            && self
                .groups
                .iter()
                .any(|g| Some(g.id.as_str()) != except && g.name.to_lowercase() == name.to_lowercase())
    }
    /// Member ids for user indexes (deduplicated; none if there are no users).
    fn member_ids(&self, users: &[usize]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for i in users {
            if let Some(u) = self.user(*i) {
                if !out.contains(&u.id) {
                    out.push(u.id);
                }
            }
        }
        out
    }
    fn set_user(&mut self, u: MUser) {
        if let Some(x) = self.users.iter_mut().find(|x| x.id == u.id) {
            *x = u;
        }
    }
    fn set_group(&mut self, g: MGroup) {
        if let Some(x) = self.groups.iter_mut().find(|x| x.id == g.id) {
            *x = g;
        }
    }
}

fn members_json(ids: &[String]) -> Value {
    Value::Array(ids.iter().map(|i| json!({"value": i})).collect())
}

/// Runs `op` against the host and the model; checks the status the model predicts.
fn step(host: &Host, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let t = m.t.clone();
    match op.clone() {
        Op::CreateUser { name, ext } => {
            let (name, ext) = (USER_NAMES[name], ext.map(|e| EXTERNAL_IDS[e]));
            let mut body = json!({"userName": name});
            if let Some(e) = ext {
                body["externalId"] = json!(e);
            }
            let (s, b) = host.scim(&t, "POST", "Users", Some(body));
            let want = if m.name_taken(name, None) || m.ext_taken(ext, None) { 409 } else { 201 };
            prop_assert_eq!(s, want, "{:?}: {}", op, b);
            if s == 201 {
                let id = b["id"].as_str().unwrap().to_owned();
                m.users.push(MUser {
                    id,
                    user_name: name.into(),
                    external_id: ext.map(Into::into),
                    active: true,
                });
            }
        }
        Op::RenameUser { user, name } => {
            let Some(mut u) = m.user(user) else { return Ok(()) };
            let name = USER_NAMES[name];
            let body = patch(json!([{"op": "Replace", "path": "userName", "value": name}]));
            let (s, b) = host.scim(&t, "PATCH", &format!("Users/{}", u.id), Some(body));
            let want = if m.name_taken(name, Some(&u.id)) { 409 } else { 200 };
            prop_assert_eq!(s, want, "{:?}: {}", op, b);
            if s == 200 {
                u.user_name = name.into();
                m.set_user(u);
            }
        }
        Op::SetExternalId { user, ext } => {
            let Some(mut u) = m.user(user) else { return Ok(()) };
            let ext = ext.map(|e| EXTERNAL_IDS[e]);
            let op_json = match ext {
                Some(e) => json!({"op": "replace", "path": "externalId", "value": e}),
                None => json!({"op": "remove", "path": "externalId"}),
            };
            let (s, b) = host.scim(&t, "PATCH", &format!("Users/{}", u.id), Some(patch(json!([op_json]))));
            let want = if m.ext_taken(ext, Some(&u.id)) { 409 } else { 200 };
            prop_assert_eq!(s, want, "{:?}: {}", op, b);
            if s == 200 {
                u.external_id = ext.map(Into::into);
                m.set_user(u);
            }
        }
        Op::SetActive { user, active, as_string } => {
            let Some(mut u) = m.user(user) else { return Ok(()) };
            let value = if as_string { json!(if active { "True" } else { "False" }) } else { json!(active) };
            let body = patch(json!([{"op": "Replace", "path": "active", "value": value}]));
            let (s, b) = host.scim(&t, "PATCH", &format!("Users/{}", u.id), Some(body));
            prop_assert_eq!(s, 200, "{:?}: {}", op, b);
            prop_assert_eq!(&b["active"], &json!(active));
            u.active = active;
            m.set_user(u);
        }
        Op::PutUser { user, name, ext, active } => {
            let Some(u) = m.user(user) else { return Ok(()) };
            let (name, ext) = (USER_NAMES[name], ext.map(|e| EXTERNAL_IDS[e]));
            let mut body = json!({"userName": name, "active": active});
            if let Some(e) = ext {
                body["externalId"] = json!(e);
            }
            let (s, b) = host.scim(&t, "PUT", &format!("Users/{}", u.id), Some(body));
            let want =
                if m.name_taken(name, Some(&u.id)) || m.ext_taken(ext, Some(&u.id)) { 409 } else { 200 };
            prop_assert_eq!(s, want, "{:?}: {}", op, b);
            if s == 200 {
                m.set_user(MUser {
                    id: u.id,
                    user_name: name.into(),
                    external_id: ext.map(Into::into),
                    active,
                });
            }
        }
        Op::DeleteUser { user } => {
            let Some(u) = m.user(user) else { return Ok(()) };
            let (s, b) = host.scim(&t, "DELETE", &format!("Users/{}", u.id), None);
            prop_assert_eq!(s, 204, "{:?}: {}", op, b);
            m.users.retain(|x| x.id != u.id);
            for g in &mut m.groups {
                g.members.remove(&u.id);
            }
        }
        Op::CreateGroup { name, members } => {
            let name = GROUP_NAMES[name];
            let ids = m.member_ids(&members);
            let body = json!({"displayName": name, "members": members_json(&ids)});
            let (s, b) = host.scim(&t, "POST", "Groups", Some(body));
            let want = if m.group_taken(name, None) { 409 } else { 201 };
            prop_assert_eq!(s, want, "{:?}: {}", op, b);
            if s == 201 {
                let id = b["id"].as_str().unwrap().to_owned();
                m.groups.push(MGroup { id, name: name.into(), members: ids.into_iter().collect() });
            }
        }
        Op::RenameGroup { group, name } => {
            let Some(mut g) = m.group(group) else { return Ok(()) };
            let name = GROUP_NAMES[name];
            let body = patch(json!([{"op": "Replace", "path": "displayName", "value": name}]));
            let (s, b) = host.scim(&t, "PATCH", &format!("Groups/{}", g.id), Some(body));
            let want = if m.group_taken(name, Some(&g.id)) { 409 } else { 204 };
            prop_assert_eq!(s, want, "{:?}: {}", op, b);
            if s == 204 {
                g.name = name.into();
                m.set_group(g);
            }
        }
        Op::AddMembers { group, users } | Op::RemoveMembers { group, users } => {
            let Some(mut g) = m.group(group) else { return Ok(()) };
            let ids = m.member_ids(&users);
            if ids.is_empty() {
                return Ok(());
            }
            let add = matches!(op, Op::AddMembers { .. });
            let body = patch(json!([{"op": if add { "Add" } else { "Remove" }, "path": "members",
                                     "value": members_json(&ids)}]));
            let (s, b) = host.scim(&t, "PATCH", &format!("Groups/{}", g.id), Some(body));
            prop_assert_eq!(s, 204, "{:?}: {}", op, b);
            for id in ids {
                if add {
                    g.members.insert(id);
                } else {
                    g.members.remove(&id);
                }
            }
            m.set_group(g);
        }
        Op::RemoveMemberByFilter { group, user } => {
            let (Some(mut g), Some(u)) = (m.group(group), m.user(user)) else { return Ok(()) };
            let body = patch(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", u.id)}]));
            let (s, b) = host.scim(&t, "PATCH", &format!("Groups/{}?aadOptscim062020", g.id), Some(body));
            prop_assert_eq!(s, 204, "{:?}: {}", op, b);
            g.members.remove(&u.id);
            m.set_group(g);
        }
        Op::PutGroup { group, name, members } => {
            let Some(g) = m.group(group) else { return Ok(()) };
            let name = GROUP_NAMES[name];
            let ids = m.member_ids(&members);
            let body = json!({"displayName": name, "members": members_json(&ids)});
            let (s, b) = host.scim(&t, "PUT", &format!("Groups/{}", g.id), Some(body));
            let want = if m.group_taken(name, Some(&g.id)) { 409 } else { 200 };
            prop_assert_eq!(s, want, "{:?}: {}", op, b);
            if s == 200 {
                m.set_group(MGroup { id: g.id, name: name.into(), members: ids.into_iter().collect() });
            }
        }
        Op::DeleteGroup { group } => {
            let Some(g) = m.group(group) else { return Ok(()) };
            let (s, b) = host.scim(&t, "DELETE", &format!("Groups/{}", g.id), None);
            prop_assert_eq!(s, 204, "{:?}: {}", op, b);
            m.groups.retain(|x| x.id != g.id);
        }
        Op::Regenerate => {
            let fresh = host.connect(&t.name);
            prop_assert_eq!(host.scim(&t, "GET", "Users", None).0, 401, "the old token is dead");
            m.t = fresh;
        }
    }
    Ok(())
}

/// The API's view of a tenant equals the model.
fn agrees(host: &Host, m: &Model) -> Result<(), TestCaseError> {
    let (s, l) = host.scim(&m.t, "GET", "Users?count=1000", None);
    prop_assert_eq!(s, 200);
    let mut api: Vec<MUser> = l["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| MUser {
            id: u["id"].as_str().unwrap().into(),
            user_name: u["userName"].as_str().unwrap().into(),
            external_id: u["externalId"].as_str().map(Into::into),
            active: u["active"].as_bool().unwrap(),
        })
        .collect();
    api.sort();
    let mut want = m.users.clone();
    want.sort();
    prop_assert_eq!(&api, &want);
    prop_assert_eq!(l["totalResults"].as_u64(), Some(want.len() as u64));

    let (s, l) = host.scim(&m.t, "GET", "Groups?attributes=displayName,members&count=1000", None);
    prop_assert_eq!(s, 200);
    let mut api: Vec<MGroup> = l["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| MGroup {
            id: g["id"].as_str().unwrap().into(),
            name: g["displayName"].as_str().unwrap().into(),
            members: g["members"]
                .as_array()
                .map(|a| a.iter().map(|x| x["value"].as_str().unwrap().to_owned()).collect())
                .unwrap_or_default(),
        })
        .collect();
    api.sort();
    let mut want = m.groups.clone();
    want.sort();
    prop_assert_eq!(&api, &want);

    // Every user is found by its userName (in another case), once, and by its externalId
    // with every user that shares it.
    for u in &m.users {
        let q = format!("Users?filter=userName%20eq%20%22{}%22", u.user_name.to_uppercase());
        let (_, l) = host.scim(&m.t, "GET", &q, None);
        prop_assert_eq!(l["totalResults"].as_u64(), Some(1), "{}", q);
        prop_assert_eq!(l["Resources"][0]["id"].as_str(), Some(u.id.as_str()));
        if let Some(e) = &u.external_id {
            let (_, l) = host.scim(&m.t, "GET", &format!("Users?filter=externalId%20eq%20%22{e}%22"), None);
            let sharing = m.users.iter().filter(|x| x.external_id.as_deref() == Some(e)).count();
            prop_assert_eq!(l["totalResults"].as_u64(), Some(sharing as u64));
            let found = l["Resources"].as_array().unwrap().iter().any(|x| x["id"] == json!(u.id));
            prop_assert!(found, "{} not found by its externalId", u.id);
        }
    }
    // Every group is found by its displayName (in another case) with every group that shares it.
    for g in &m.groups {
        let q =
            format!("Groups?filter=displayName%20eq%20%22{}%22", g.name.to_uppercase().replace(' ', "%20"));
        let (_, l) = host.scim(&m.t, "GET", &q, None);
        let sharing = m.groups.iter().filter(|x| x.name.to_lowercase() == g.name.to_lowercase()).count();
        prop_assert_eq!(l["totalResults"].as_u64(), Some(sharing as u64), "{}", q);
    }
    // Group membership as the user sees it (members filter) agrees with the member lists.
    let mut by_user: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for g in &m.groups {
        for u in &g.members {
            by_user.entry(u.as_str()).or_default().insert(g.id.as_str());
        }
    }
    for u in &m.users {
        let (_, l) = host.scim(&m.t, "GET", &format!("Groups?filter=members%20eq%20%22{}%22", u.id), None);
        let found: BTreeSet<&str> =
            l["Resources"].as_array().unwrap().iter().map(|g| g["id"].as_str().unwrap()).collect();
        prop_assert_eq!(found, by_user.get(u.id.as_str()).cloned().unwrap_or_default());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_operations_keeps_the_store_consistent(
        ops in prop::collection::vec(op(), 1..60),
        unique in any::<bool>(),
    ) {
        let host = if unique {
            Host::with_config(r#""uniqueness": {"externalId": true, "groupDisplayName": true}"#)
        } else {
            Host::new()
        };
        let mut models = [
            Model { t: host.tenant("alpha"), users: vec![], groups: vec![], unique },
            Model { t: host.tenant("beta"), users: vec![], groups: vec![], unique },
        ];
        for (tenant, op) in &ops {
            step(&host, &mut models[*tenant], op)?;
        }
        let report = scim_edge_core::consistency::check(host.store.entries());
        prop_assert!(report.problems.is_empty(), "{}", report);
        for m in &models {
            agrees(&host, m)?;
        }
    }
}
