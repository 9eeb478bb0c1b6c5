//! SCIM Users of one tenant: create, read, query, replace, patch, delete.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::index;
use crate::keys::{self, Index, List};
use crate::lifecycle::{Event, Source, UserState};
use crate::scim::filter::{self, Filter};
use crate::scim::patch;
use crate::scim::schema::{self, ResourceKind};
use crate::store::{get_json, put_json, Condition, Store, StoreError, Version};
use crate::{counters, limits, list, roles, time, Env};

/// How often a write that lost a race to a concurrent one is retried.
const RETRIES: usize = 8;

/// What the store holds for a user.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub id: String,
    pub state: UserState,
    /// `crate::roles`: set to `user` by SCIM, changed only through the admin API.
    pub role: String,
    pub source: Source,
    pub created: String,
    pub last_modified: String,
    pub version: u64,
    /// The SCIM attributes as normalised by `schema::normalize` (no id, meta or schemas).
    pub attributes: Map<String, Value>,
}

/// The request's tenant and the SCIM base URL its resources live under.
pub struct Scope<'a> {
    pub tenant: &'a str,
    /// `{public base}/scim/v2/{connection}`
    pub base: &'a str,
}

fn str_attr<'a>(attrs: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    attrs.get(name).and_then(Value::as_str)
}

impl UserRecord {
    pub fn user_name(&self) -> Option<&str> {
        str_attr(&self.attributes, "userName")
    }
    pub fn external_id(&self) -> Option<&str> {
        str_attr(&self.attributes, "externalId")
    }
    pub fn display_name(&self) -> Option<&str> {
        str_attr(&self.attributes, "displayName")
    }
    /// The primary e-mail address, else the first.
    pub fn email(&self) -> Option<&str> {
        let emails = self.attributes.get("emails")?.as_array()?;
        let primary = emails.iter().find(|e| e.get("primary").and_then(Value::as_bool) == Some(true));
        primary.or(emails.first())?.get("value")?.as_str()
    }

    /// The SCIM representation (RFC 7643 §4.1) with `meta`.
    /// The SCIM resource. Consumes the record: its attributes move into the resource (a read
    /// renders every record it loads once, and copying them cost a tenth of a lookup).
    pub fn render(self, base: &str) -> Value {
        let schemas: Vec<Value> =
            schema::schemas_for(ResourceKind::User, &self.attributes).into_iter().map(Value::from).collect();
        let meta = serde_json::json!({
            "resourceType": "User",
            "created": self.created,
            "lastModified": self.last_modified,
            "version": etag(self.version),
            "location": format!("{base}/Users/{}", self.id),
        });
        let mut obj = self.attributes;
        obj.insert("schemas".into(), Value::Array(schemas));
        obj.insert("id".into(), Value::from(self.id));
        obj.insert("active".into(), Value::Bool(self.state.is_active()));
        obj.insert("meta".into(), meta);
        Value::Object(obj)
    }
}

pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

fn not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("User {id:?} not found"))
}

pub async fn load<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    id: &str,
) -> ScimResult<Option<(UserRecord, Version)>> {
    if !keys::valid_id(id) {
        return Ok(None);
    }
    get_json(env.store, &keys::user(tenant, id)).await
}

/// Applies the `active` attribute to the lifecycle state and keeps the two in step.
fn settle_state(state: UserState, attrs: &mut Map<String, Value>) -> UserState {
    let state = match attrs.get("active").and_then(Value::as_bool) {
        Some(a) => state.on(Event::SetActive(a)),
        None => state,
    };
    attrs.insert("active".into(), Value::Bool(state.is_active()));
    state
}

/// How a SCIM POST /Users was satisfied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    New,
    /// The userName belonged to a locally created user (the tenant's first administrator, say),
    /// which SCIM now manages: its attributes are replaced, its id and role kept.
    MatchedLocal,
}

pub async fn create<S: Store>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    body: &Value,
) -> ScimResult<(UserRecord, Created)> {
    let attrs = schema::normalize(ResourceKind::User, body)?;
    limits::check_resource(&attrs, &env.config.limits)?;
    let user_name = str_attr(&attrs, "userName").unwrap_or_default();
    if let Some(id) = index::lookup(env, scope.tenant, Index::UserName, user_name).await? {
        if let Some((old, _)) = load(env, scope.tenant, &id).await? {
            if old.source == Source::Local {
                let rec = update(env, scope, &id, Some(Source::Scim), |_| Ok(attrs.clone())).await?;
                return Ok((rec, Created::MatchedLocal));
            }
        }
    }
    let rec = insert(env, scope.tenant, attrs, roles::USER, Source::Scim).await?;
    Ok((rec, Created::New))
}

/// Creates a user outside SCIM (the tenant's first administrator).
pub async fn create_local<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    user_name: &str,
    display_name: Option<&str>,
    role: &str,
) -> ScimResult<UserRecord> {
    let mut body = serde_json::json!({ "schemas": [schema::USER_SCHEMA], "userName": user_name });
    if let (Some(d), Some(obj)) = (display_name, body.as_object_mut()) {
        obj.insert("displayName".into(), Value::from(d));
    }
    let attrs = schema::normalize(ResourceKind::User, &body)?;
    insert(env, tenant, attrs, role, Source::Local).await
}

async fn insert<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    mut attrs: Map<String, Value>,
    role: &str,
    source: Source,
) -> ScimResult<UserRecord> {
    let id = crate::tenants::random_hex(env, 16)?;
    let now = time::rfc3339(env.clock.now_millis());
    let state = UserState::provisioned(attrs.get("active").and_then(Value::as_bool));
    attrs.insert("active".into(), Value::Bool(state.is_active()));
    let rec = UserRecord {
        id: id.clone(),
        state,
        role: role.to_owned(),
        source,
        created: now.clone(),
        last_modified: now,
        version: 1,
        attributes: attrs,
    };
    // The record, then its index entries and list position (see `index::register`).
    let key = keys::user(t, &id);
    put_json(env.store, &key, &rec, Condition::Any).await?;
    let mut entries = vec![(Index::UserName, rec.user_name().unwrap_or_default())];
    entries.extend(rec.external_id().map(|x| (Index::UserExternalId, x)));
    index::register(env, t, &key, &id, &entries, &List::Users).await?;
    count_states(env, t, None, Some(rec.state)).await;
    Ok(rec)
}

/// Completes a user a failed create left unlisted, and maybe unindexed (the create lists last):
/// lists it (`list::ensure`, one read when listed) and claims its values. Undone if a
/// concurrent delete removed the record meanwhile, so a deleted user is never listed again.
async fn relist<S: Store>(env: &Env<'_, S>, t: &str, id: &str) -> ScimResult<()> {
    if !list::ensure(env, t, &List::Users, id).await? {
        return Ok(());
    }
    let Some((rec, _)) = load(env, t, id).await? else {
        return list::remove(env, t, &List::Users, &[id.to_owned()]).await;
    };
    if let Some(u) = rec.user_name() {
        index::claim(env, t, Index::UserName, u, id).await?;
    }
    if let Some(x) = rec.external_id() {
        index::claim(env, t, Index::UserExternalId, x, id).await?;
    }
    Ok(())
}

/// Keeps the tenant's user counts by state (`counters`) in step with a transition. Best
/// effort: the write it follows has happened and is not undone for a counter.
async fn count_states<S: Store>(env: &Env<'_, S>, t: &str, from: Option<UserState>, to: Option<UserState>) {
    if from == to {
        return;
    }
    let name = |s: UserState| if s.is_active() { "active" } else { "disabled" };
    let mut deltas = Vec::with_capacity(2);
    if let Some(f) = from {
        deltas.push((name(f), -1));
    }
    if let Some(t) = to {
        deltas.push((name(t), 1));
    }
    let _ = counters::add(env, |s| keys::tenant_stats(t, s), &deltas).await;
}

/// The tenant's number of (active, disabled) users.
pub async fn counts<S: Store>(env: &Env<'_, S>, t: &str) -> ScimResult<(u64, u64)> {
    let c = counters::sum(env, |s| keys::tenant_stats(t, s)).await?;
    let get = |n: &str| c.get(n).copied().unwrap_or(0).max(0) as u64;
    Ok((get("active"), get("disabled")))
}

pub async fn get<S: Store>(env: &Env<'_, S>, scope: &Scope<'_>, id: &str) -> ScimResult<UserRecord> {
    load(env, scope.tenant, id).await?.map(|(r, _)| r).ok_or_else(|| not_found(id))
}

/// Replaces the user's attributes with `next` (already validated), moving index entries and
/// applying the lifecycle; retried on concurrent changes via `make`.
async fn update<S, F>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    id: &str,
    source: Option<Source>,
    make: F,
) -> ScimResult<UserRecord>
where
    S: Store,
    F: Fn(&UserRecord) -> ScimResult<Map<String, Value>>,
{
    let t = scope.tenant;
    for _ in 0..RETRIES {
        let Some((old, ver)) = load(env, t, id).await? else { return Err(not_found(id)) };
        let mut attrs = make(&old)?;
        let state = settle_state(old.state, &mut attrs);
        let rec = UserRecord {
            attributes: attrs,
            state,
            last_modified: time::rfc3339(env.clock.now_millis()),
            version: old.version + 1,
            source: source.unwrap_or(old.source),
            ..old.clone()
        };
        if rec.user_name().is_none_or(str::is_empty) {
            return Err(ScimError::invalid_value("userName is required and cannot be removed"));
        }
        if rec.attributes == old.attributes && rec.state == old.state && rec.source == old.source {
            // Nothing changed: keep version and timestamps (Entra re-sends values every cycle).
            relist(env, t, id).await?;
            return Ok(old);
        }
        // After the no-change answer: a resource stored under larger limits stays readable
        // and re-sendable, it just cannot grow.
        limits::check_resource(&rec.attributes, &env.config.limits)?;
        let moves = [
            (Index::UserName, old.user_name(), rec.user_name()),
            (Index::UserExternalId, old.external_id(), rec.external_id()),
        ];
        if index::rewrite(env, t, id, moves, &keys::user(t, id), &rec, ver).await? {
            count_states(env, t, Some(old.state), Some(rec.state)).await;
            relist(env, t, id).await?;
            return Ok(rec);
        }
    }
    Err(StoreError::Conflict.into())
}

/// PUT: the body replaces every attribute. State and role are kept unless `active` says otherwise.
pub async fn replace<S: Store>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    id: &str,
    body: &Value,
) -> ScimResult<UserRecord> {
    let attrs = schema::normalize(ResourceKind::User, body)?;
    update(env, scope, id, Some(Source::Scim), |_| Ok(attrs.clone())).await
}

pub async fn patch<S: Store>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    id: &str,
    body: &Value,
) -> ScimResult<UserRecord> {
    limits::check_patch_operations(body, &env.config.limits)?;
    let ops = patch::parse_request(body)?;
    update(env, scope, id, Some(Source::Scim), |old| {
        let mut attrs = old.attributes.clone();
        patch::apply(ResourceKind::User, &mut attrs, &ops)?;
        Ok(attrs)
    })
    .await
}

/// Hard delete: the user and every trace of it (indexes, memberships, list entry).
///
/// The record goes first, with compare-and-swap on the version that was read: a concurrent
/// rename or state change either lands before (and the delete retries on what it wrote) or
/// fails its own compare-and-swap; of two concurrent deletes one wins and the other answers
/// 404; a concurrent member add that wrote its membership after the cleanup below read the
/// user's groups finds the record gone and undoes itself (`groups::add_members`).
pub async fn delete<S: Store>(env: &Env<'_, S>, scope: &Scope<'_>, id: &str) -> ScimResult<()> {
    let t = scope.tenant;
    for _ in 0..RETRIES {
        let Some((rec, ver)) = load(env, t, id).await? else {
            finish_delete(env, t, id).await?;
            return Err(not_found(id));
        };
        match env.store.delete(&keys::user(t, id), Condition::Version(ver)).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
        count_states(env, t, Some(rec.state), None).await;
        crate::groups::remove_user_everywhere(env, t, id).await?;
        list::remove(env, t, &List::Users, std::slice::from_ref(&rec.id)).await?;
        if let Some(u) = rec.user_name() {
            index::release(env, t, Index::UserName, u, id).await?;
        }
        if let Some(x) = rec.external_id() {
            index::release(env, t, Index::UserExternalId, x, id).await?;
        }
        return Ok(());
    }
    Err(StoreError::Conflict.into())
}

/// What a delete that failed after removing the record leaves (its memberships, its list
/// position) is removed when the delete is retried: Entra retries a failed DELETE. Two reads
/// when nothing is left. (Index entries of a missing record are taken over by the next claim.)
async fn finish_delete<S: Store>(env: &Env<'_, S>, t: &str, id: &str) -> ScimResult<()> {
    if !keys::valid_id(id) {
        return Ok(());
    }
    if env.store.get(&keys::user_groups(t, id)).await?.is_some() {
        crate::groups::remove_user_everywhere(env, t, id).await?;
    }
    if list::contains(env, t, &List::Users, id).await? {
        list::remove(env, t, &List::Users, &[id.to_owned()]).await?;
    }
    Ok(())
}

/// Gives the user another role (admin API only; SCIM never calls this). The SCIM
/// representation does not change, so neither do its version and timestamps.
pub async fn set_role<S: Store>(env: &Env<'_, S>, t: &str, id: &str, role: &str) -> ScimResult<UserRecord> {
    if !roles::exists(env.config, role) {
        return Err(ScimError::invalid_value(format!(
            "unknown role {role:?}: use user, administrator, system_technician or a role in extraRoles"
        )));
    }
    for _ in 0..RETRIES {
        let Some((mut rec, ver)) = load(env, t, id).await? else { return Err(not_found(id)) };
        if rec.role == role {
            return Ok(rec);
        }
        rec.role = role.to_owned();
        match put_json(env.store, &keys::user(t, id), &rec, Condition::Version(ver)).await {
            Ok(_) => return Ok(rec),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// A page of a query's results.
pub struct Page {
    pub total: u64,
    pub resources: Vec<Value>,
}

fn case_exact(p: &filter::AttrPath) -> bool {
    schema::case_exact(ResourceKind::User, p)
}

/// GET /Users with an optional filter. Equality on `id`, `userName` or `externalId` in the
/// filter's top-level `and` chain is answered from the indexes with O(1) reads; other
/// filters scan the tenant's users.
pub async fn query<S: Store>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    filter: Option<&Filter>,
    start: u64,
    count: u64,
) -> ScimResult<Page> {
    let t = scope.tenant;
    let Some(f) = filter else {
        let total = list::len(env, t, &List::Users).await?;
        let ids = list::page(env, t, &List::Users, start, count).await?;
        let mut resources = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some((r, _)) = load(env, t, &id).await? {
                resources.push(r.render(scope.base));
            }
        }
        return Ok(Page { total, resources });
    };
    let candidates = match index::candidates(
        env,
        t,
        f,
        schema::USER_SCHEMA,
        &[("userName", Index::UserName), ("externalId", Index::UserExternalId)],
    )
    .await?
    {
        Some(c) => c,
        None => list::all(env, t, &List::Users).await?,
    };
    let mut matched = Vec::new();
    for id in candidates {
        if let Some((r, _)) = load(env, t, &id).await? {
            let v = r.render(scope.base);
            if filter::matches(f, &v, &case_exact) {
                matched.push(v);
            }
        }
    }
    Ok(paginate(matched, start, count))
}

pub fn paginate(all: Vec<Value>, start: u64, count: u64) -> Page {
    let total = all.len() as u64;
    let resources = all
        .into_iter()
        .skip(usize::try_from(start).unwrap_or(usize::MAX))
        .take(usize::try_from(count).unwrap_or(usize::MAX))
        .collect();
    Page { total, resources }
}

pub fn comp_str(v: &filter::CompValue) -> Option<String> {
    match v {
        filter::CompValue::Str(s) => Some(s.clone()),
        filter::CompValue::Num(n) => Some(n.to_string()),
        filter::CompValue::Bool(b) => Some(b.to_string()),
        filter::CompValue::Null => None,
    }
}
