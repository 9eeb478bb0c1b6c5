//! SCIM Users of one tenant: create, read, query, replace, patch, delete.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::blocks::{self, Block};
use crate::error::{ScimError, ScimResult};
use crate::index;
use crate::keys::{self, Index, List};
use crate::lifecycle::{Event, Source, UserState};
use crate::log::Actor;
use crate::scim::etag::Preconditions;
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

    /// The SCIM resource, rendered from the record as stored (see [`Stored`]).
    pub fn render(&self, base: &str) -> ScimResult<Rendered> {
        let bytes = serde_json::to_vec(self).map_err(|e| ScimError::internal(format!("user record: {e}")))?;
        Ok(Stored::parse(&bytes, &self.id)?.render(base))
    }
}

/// A user's SCIM resource (RFC 7643 §4.1) as JSON, with what its response headers need.
pub struct Rendered {
    pub json: Vec<u8>,
    pub version: u64,
    /// `meta.location`
    pub location: String,
}

/// A stored user record as a read renders it: the fields the resource shows, and the SCIM
/// attributes with their names borrowed from the stored bytes and each value left as its
/// stored JSON. A lookup or a read copies those values into the response instead of
/// building, rendering and serialising a tree of them (which was most of its cost); only
/// the attributes a filter reads are parsed ([`Stored::filter_view`]).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    state: UserState,
    #[serde(borrow)]
    created: Text<'a>,
    #[serde(borrow)]
    last_modified: Text<'a>,
    version: u64,
    #[serde(borrow)]
    attributes: BTreeMap<Text<'a>, &'a RawValue>,
}

/// A string of a stored record, borrowed unless it has escapes.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The server-managed members of a user resource, in key order; each replaces an attribute
/// of the same name (`active` is stored in step with the state, but the state decides).
const SERVER_KEYS: [&str; 4] = ["active", "id", "meta", "schemas"];

impl<'a> Stored<'a> {
    /// `key` names the record in the error.
    pub fn parse(bytes: &'a [u8], key: &str) -> ScimResult<Stored<'a>> {
        serde_json::from_slice(bytes)
            .map_err(|_| ScimError::internal(format!("stored record {key} is corrupt")))
    }

    fn location(&self, base: &str) -> String {
        format!("{base}/Users/{}", self.id.0)
    }

    /// Writes the JSON of the server's member `key` (one of [`SERVER_KEYS`]).
    fn write_server_member(&self, key: &str, location: &str, out: &mut Vec<u8>) {
        match key {
            "active" => out.extend_from_slice(if self.state.is_active() { b"true" } else { b"false" }),
            "id" => write_str(out, &self.id.0),
            "meta" => {
                out.extend_from_slice(b"{\"created\":");
                write_str(out, &self.created.0);
                out.extend_from_slice(b",\"lastModified\":");
                write_str(out, &self.last_modified.0);
                out.extend_from_slice(b",\"location\":");
                write_str(out, location);
                out.extend_from_slice(b",\"resourceType\":\"User\",\"version\":");
                write_str(out, &etag(self.version));
                out.push(b'}');
            }
            // "schemas"
            _ => {
                let extension = |raw: &RawValue| raw.get().starts_with('{') && raw.get() != "{}";
                let entries = self.attributes.iter().map(|(k, v)| (&*k.0, extension(v)));
                out.push(b'[');
                for (i, s) in schema::schemas_of(ResourceKind::User, entries).into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, s);
                }
                out.push(b']');
            }
        }
    }

    /// The SCIM resource's JSON: the stored attributes and the server's members, in key order
    /// (as `serde_json` writes an object).
    pub fn render(&self, base: &str) -> Rendered {
        let location = self.location(base);
        let mut out = Vec::with_capacity(1024);
        out.push(b'{');
        let mut server = SERVER_KEYS.iter().peekable();
        let key = |out: &mut Vec<u8>, key: &str| {
            if out.len() > 1 {
                out.push(b',');
            }
            write_str(out, key);
            out.push(b':');
        };
        for (name, raw) in &self.attributes {
            while let Some(k) = server.next_if(|k| **k <= &*name.0) {
                key(&mut out, k);
                self.write_server_member(k, &location, &mut out);
            }
            if !SERVER_KEYS.contains(&&*name.0) {
                key(&mut out, &name.0);
                out.extend_from_slice(raw.get().as_bytes());
            }
        }
        for k in server {
            key(&mut out, k);
            self.write_server_member(k, &location, &mut out);
        }
        out.push(b'}');
        Rendered { json: out, version: self.version, location }
    }

    /// The part of the resource `f` reads ([`filter::reads`]), for [`filter::matches`]: the
    /// same answer as the whole resource, for a fraction of the parsing.
    fn filter_view(&self, f: &Filter, base: &str) -> Value {
        let mut obj = Map::new();
        for (key, raw) in &self.attributes {
            if filter::reads(f, &key.0) {
                if let Ok(v) = serde_json::from_slice(raw.get().as_bytes()) {
                    obj.insert(key.0.clone().into_owned(), v);
                }
            }
        }
        for key in SERVER_KEYS {
            if filter::reads(f, key) {
                let mut json = Vec::new();
                self.write_server_member(key, &self.location(base), &mut json);
                if let Ok(v) = serde_json::from_slice(&json) {
                    obj.insert(key.to_owned(), v);
                }
            }
        }
        Value::Object(obj)
    }
}

/// `s` as a JSON string.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(out, s);
}

pub use crate::scim::etag::etag;

fn not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("User {id:?} not found"))
}

/// The answer to a write of a user that does not exist: the refusal of its block if it was
/// removed by hand (so that Entra, whose PATCH or PUT of a removed user would otherwise get
/// 404 and create it again, sees why), else 404. One read, on this failure path only.
async fn missing<S: Store>(env: &Env<'_, S>, t: &str, id: &str) -> ScimError {
    match blocks::get(env, t, id).await {
        Ok(Some(block)) => block.refusal(),
        Ok(None) => not_found(id),
        Err(e) => e,
    }
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
    let t = scope.tenant;
    let user_name = str_attr(&attrs, "userName").unwrap_or_default();
    // The userName's entry: a user that holds it, or the block of a user removed by hand
    // (`crate::blocks`), which keeps it pointing at the removed id. No extra read for a new name.
    let mut holder = None;
    if let Some(id) = index::lookup(env, t, Index::UserName, user_name).await?.first() {
        match load(env, t, id).await? {
            Some((old, _)) => holder = Some(old),
            None => {
                if let Some(block) = blocks::get(env, t, id).await? {
                    return Err(block.refusal());
                }
            }
        }
    }
    if let Some(x) = str_attr(&attrs, "externalId") {
        if let Some(block) = blocks::on_external_id(env, t, x).await? {
            return Err(block.refusal());
        }
    }
    if let Some(old) = &holder {
        // The userName is taken (the create below answers 409). A create cut short after its
        // claims left its user findable but unlisted; a client retrying that create (Entra,
        // after a timeout) completes it here: one read when the user is listed already.
        relist(env, t, &old.id).await?;
    }
    if let Some(old) = holder.filter(|old| old.source == Source::Local) {
        let rec =
            update(env, scope, &old.id, Some(Source::Scim), &Preconditions::NONE, |_| Ok(attrs.clone()))
                .await?;
        return Ok((rec, Created::MatchedLocal));
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

/// The user's stored record, unparsed.
async fn load_raw<S: Store>(
    env: &Env<'_, S>,
    tenant: &str,
    id: &str,
) -> ScimResult<Option<(String, Vec<u8>)>> {
    if !keys::valid_id(id) {
        return Ok(None);
    }
    let key = keys::user(tenant, id);
    Ok(env.store.get(&key).await?.map(|v| (key, v.value)))
}

/// GET /Users/{id}
pub async fn get<S: Store>(env: &Env<'_, S>, scope: &Scope<'_>, id: &str) -> ScimResult<Rendered> {
    let (key, bytes) = load_raw(env, scope.tenant, id).await?.ok_or_else(|| not_found(id))?;
    Ok(Stored::parse(&bytes, &key)?.render(scope.base))
}

/// Replaces the user's attributes with what `make` makes of the stored record (validated
/// there), moving index entries and applying the lifecycle; retried on concurrent changes.
/// `pre` is checked against each version read, and the write is conditional on that version.
async fn update<S, F>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    id: &str,
    source: Option<Source>,
    pre: &Preconditions,
    make: F,
) -> ScimResult<UserRecord>
where
    S: Store,
    F: Fn(&UserRecord) -> ScimResult<Map<String, Value>>,
{
    let t = scope.tenant;
    for _ in 0..RETRIES {
        let Some((old, ver)) = load(env, t, id).await? else { return Err(missing(env, t, id).await) };
        pre.check_write(&format!("User {id}"), &etag(old.version))?;
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
    pre: &Preconditions,
) -> ScimResult<UserRecord> {
    let attrs = schema::normalize(ResourceKind::User, body)?;
    update(env, scope, id, Some(Source::Scim), pre, |_| Ok(attrs.clone())).await
}

pub async fn patch<S: Store>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    id: &str,
    body: &Value,
    pre: &Preconditions,
) -> ScimResult<UserRecord> {
    limits::check_patch_operations(body, &env.config.limits)?;
    let ops = patch::parse_request(body)?;
    update(env, scope, id, Some(Source::Scim), pre, |old| {
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
///
/// A user removed by hand is gone already: deleting its id lifts its block instead (Entra's
/// hard delete: the person left the directory for good, and the name may be reused). `pre`
/// (the request's `If-Match`, …) is checked against the version the delete is conditional on.
pub async fn delete<S: Store>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    id: &str,
    pre: &Preconditions,
) -> ScimResult<Deleted> {
    let t = scope.tenant;
    for _ in 0..RETRIES {
        let Some((rec, ver)) = load(env, t, id).await? else {
            finish_delete(env, t, id).await?;
            return match unblock(env, t, id).await? {
                Some(_) => Ok(Deleted::Block),
                None => Err(not_found(id)),
            };
        };
        pre.check_write(&format!("User {id}"), &etag(rec.version))?;
        match env.store.delete(&keys::user(t, id), Condition::Version(ver)).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
        forget(env, t, &rec, id, true).await?;
        return Ok(Deleted::User);
    }
    Err(StoreError::Conflict.into())
}

/// Everything that refers to the user whose record was just deleted: the state counts, its
/// group memberships, its list position and its index entries (its userName entry only when
/// `release_user_name`; a removal by hand keeps it as the block's anchor).
async fn forget<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    rec: &UserRecord,
    id: &str,
    release_user_name: bool,
) -> ScimResult<()> {
    count_states(env, t, Some(rec.state), None).await;
    crate::groups::remove_user_everywhere(env, t, id).await?;
    list::remove(env, t, &List::Users, std::slice::from_ref(&rec.id)).await?;
    if let Some(u) = rec.user_name().filter(|_| release_user_name) {
        index::release(env, t, Index::UserName, u, id).await?;
    }
    if let Some(x) = rec.external_id() {
        index::release(env, t, Index::UserExternalId, x, id).await?;
    }
    Ok(())
}

/// What a [`delete`] deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    User,
    /// The id was of a user removed by hand: its block was lifted.
    Block,
}

/// Removes a user by hand (admin API): deleted like [`delete`], and blocked (`crate::blocks`)
/// so that SCIM cannot create or re-enable it until the block is lifted ([`unblock`]).
///
/// The block is written before the record is deleted, and the `userName` entry is claimed for
/// the id first (a no-op when it holds it, as it should) and kept: an outage at any point
/// leaves the user present or removed-and-blocked, never removed without its block. Removing
/// a user that is removed and blocked already completes what an earlier removal cut short
/// (memberships, list position, `externalId` entry) and answers with its block.
pub async fn remove<S: Store>(env: &Env<'_, S>, t: &str, id: &str, by: &Actor) -> ScimResult<Block> {
    let mut placed: Option<Block> = None;
    for _ in 0..RETRIES {
        let Some((rec, ver)) = load(env, t, id).await? else {
            let Some(block) = blocks::get(env, t, id).await? else { return Err(not_found(id)) };
            finish_delete(env, t, id).await?;
            if let Some(x) = &block.external_id {
                index::release(env, t, Index::UserExternalId, x, id).await?;
            }
            return Ok(block);
        };
        let user_name = rec.user_name().unwrap_or_default();
        let block = Block {
            id: id.to_owned(),
            user_name: user_name.to_owned(),
            external_id: rec.external_id().map(str::to_owned),
            display_name: rec.display_name().map(str::to_owned),
            blocked_at: time::rfc3339(env.clock.now_millis()),
            blocked_by: by.clone(),
            external_id_blocked: env.config.uniqueness.external_id,
        };
        // A concurrent write changed the externalId since the last attempt placed the block.
        if let Some(x) =
            placed.as_ref().filter(|p| p.external_id_blocked).and_then(|p| p.external_id.as_deref())
        {
            if block.external_id.as_deref() != Some(x) {
                blocks::release_external_id(env, t, x, id).await?;
            }
        }
        // The entry names the id already (one read), unless the store was damaged.
        if index::lookup(env, t, Index::UserName, user_name).await?.first().map(String::as_str) != Some(id) {
            index::claim(env, t, Index::UserName, user_name, id).await?;
        }
        blocks::place(env, t, &block, placed.is_none()).await?;
        placed = Some(block.clone());
        match env.store.delete(&keys::user(t, id), Condition::Version(ver)).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
        // The userName entry stays: it anchors the block.
        forget(env, t, &rec, id, false).await?;
        return Ok(block);
    }
    Err(StoreError::Conflict.into())
}

/// Lifts the block on the removed user `id`: SCIM may create the identity again. `None` when
/// there is no block. The `userName` entry is released only if no user holds the id (a removal
/// cut short before deleting the user leaves both; lifting then just drops the block).
pub async fn unblock<S: Store>(env: &Env<'_, S>, t: &str, id: &str) -> ScimResult<Option<Block>> {
    let Some(block) = blocks::get(env, t, id).await? else {
        blocks::unlist(env, t, id).await?;
        return Ok(None);
    };
    if load(env, t, id).await?.is_none() {
        index::release(env, t, Index::UserName, &block.user_name, id).await?;
    }
    blocks::remove(env, t, &block).await?;
    Ok(Some(block))
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
    pub resources: Vec<Resource>,
}

/// One resource of a [`Page`].
pub enum Resource {
    /// A user, rendered (see [`Stored`]).
    Json(Vec<u8>),
    /// A group.
    Value(Value),
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
            if let Some((key, bytes)) = load_raw(env, t, &id).await? {
                resources.push(Resource::Json(Stored::parse(&bytes, &key)?.render(scope.base).json));
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
    // Only the matches on the page are rendered.
    let mut page = Page { total: 0, resources: Vec::new() };
    for id in candidates {
        let Some((key, bytes)) = load_raw(env, t, &id).await? else { continue };
        let user = Stored::parse(&bytes, &key)?;
        if filter::matches(f, &user.filter_view(f, scope.base), &case_exact) {
            if page.total >= start && page.total - start < count {
                page.resources.push(Resource::Json(user.render(scope.base).json));
            }
            page.total += 1;
        }
    }
    Ok(page)
}

pub fn comp_str(v: &filter::CompValue) -> Option<String> {
    match v {
        filter::CompValue::Str(s) => Some(s.clone()),
        filter::CompValue::Num(n) => Some(n.to_string()),
        filter::CompValue::Bool(b) => Some(b.to_string()),
        filter::CompValue::Null => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const BASE: &str = "https://scim.example/scim/v2/c1";
    const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:Custom:2.0:User";

    /// A record as the store could hold it: `active` out of step with the state (the state
    /// decides), escapes in names and values, an extension, an empty extension object, a
    /// nested object, and attribute names on both sides of the server's in key order.
    fn record() -> UserRecord {
        let Value::Object(attributes) = json!({
            "active": true,
            "addresses": [{"type": "work", "locality": "Zürich"}],
            "displayName": "Ann \"A\" \\ B",
            "emails": [{"primary": true, "type": "work", "value": "ann@example.com"}],
            "x-\"q\"": {"n": [1, 2.5, null]},
            "name": {"familyName": "B", "givenName": "Ann"},
            "title": "Eng",
            "userName": "ann@example.com",
            (CUSTOM): {},
            (schema::ENTERPRISE_USER_SCHEMA): {"department": "R&D", "manager": {"value": "m1"}},
        }) else {
            unreachable!("an object literal")
        };
        UserRecord {
            id: "0123456789abcdef0123456789abcdef".into(),
            state: UserState::Disabled,
            role: roles::USER.into(),
            source: Source::Scim,
            created: "2026-01-02T03:04:05.006Z".into(),
            last_modified: "2026-02-03T04:05:06.007Z".into(),
            version: 7,
            attributes,
        }
    }

    /// What the resource must be: the attributes, with `schemas`, `id`, `active` (from the
    /// state) and `meta` set by the server.
    fn expected(rec: &UserRecord) -> Value {
        let mut obj = rec.attributes.clone();
        obj.insert("schemas".into(), json!([schema::USER_SCHEMA, schema::ENTERPRISE_USER_SCHEMA]));
        obj.insert("id".into(), json!(rec.id));
        obj.insert("active".into(), json!(false));
        obj.insert(
            "meta".into(),
            json!({
                "resourceType": "User",
                "created": rec.created,
                "lastModified": rec.last_modified,
                "version": "W/\"7\"",
                "location": format!("{BASE}/Users/{}", rec.id),
            }),
        );
        Value::Object(obj)
    }

    #[test]
    fn a_stored_user_renders_byte_for_byte_as_serde_json_writes_its_resource() {
        let rec = record();
        let rendered = rec.render(BASE).expect("render");
        let want = serde_json::to_vec(&expected(&rec)).expect("json");
        assert_eq!(String::from_utf8_lossy(&rendered.json), String::from_utf8_lossy(&want));
        assert_eq!(rendered.version, 7);
        assert_eq!(rendered.location, format!("{BASE}/Users/{}", rec.id));
    }

    #[test]
    fn a_corrupt_stored_user_is_an_internal_error_naming_the_key() {
        for bytes in [
            &b"{"[..],
            b"[]",
            br#"{"id":"x"}"#,
            br#"{"id":"x","state":"gone","created":"","lastModified":"","version":1,"attributes":{}}"#,
        ] {
            let e = Stored::parse(bytes, "v1/t/user/x").err().expect("corrupt");
            assert_eq!(e.status, http::StatusCode::INTERNAL_SERVER_ERROR);
            assert!(e.detail.contains("v1/t/user/x"), "{}", e.detail);
        }
    }

    /// `filter_view` holds only what a filter reads, and every filter answers on it as on the
    /// whole resource.
    #[test]
    fn a_filter_answers_on_the_filter_view_as_on_the_whole_resource() {
        let rec = record();
        let bytes = serde_json::to_vec(&rec).expect("json");
        let stored = Stored::parse(&bytes, "k").expect("parse");
        let whole = expected(&rec);
        let filters = [
            r#"userName eq "ann@example.com""#,
            r#"USERNAME eq "ANN@example.com""#,
            r#"userName eq "bob@example.com""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ann@example.com""#,
            r#"department eq "R&D""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D""#,
            r#"manager.value eq "m1""#,
            r#"emails[type eq "work" and primary eq true].value sw "ann""#,
            r#"emails.value co "example""#,
            r#"name.givenName eq "Ann" and title pr"#,
            r#"displayName co "\"A\"""#,
            "active eq false",
            "active eq true",
            r#"id eq "0123456789abcdef0123456789abcdef""#,
            r#"meta.lastModified gt "2026-02-01T00:00:00Z""#,
            r#"meta.resourceType eq "User""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            "not (title pr) or nickName pr",
            r#"addresses[locality eq "Zürich"]"#,
        ];
        let mut matched = 0;
        for text in filters {
            let f = filter::parse(text).expect(text);
            let view = stored.filter_view(&f, BASE);
            let want = filter::matches(&f, &whole, &case_exact);
            assert_eq!(filter::matches(&f, &view, &case_exact), want, "{text}: {view}");
            matched += usize::from(want);
            let Value::Object(view) = view else { unreachable!("an object") };
            assert!(
                view.len() < whole.as_object().map_or(0, Map::len),
                "{text}: the view is the whole resource"
            );
        }
        assert_eq!(matched, 16, "all but bob, `active eq true` and the `not`");
    }
}
