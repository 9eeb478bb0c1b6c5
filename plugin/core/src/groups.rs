//! SCIM Groups of one tenant. Members are not part of the group record: each membership is
//! its own key (plus the group's member list and the user's group set), so adding or removing
//! one member costs the same few reads and writes whatever the group's size.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::index;
use crate::keys::{self, Index, List};
use crate::scim::etag::Preconditions;
use crate::scim::filter::{self, Filter};
use crate::scim::patch::{self, MemberChange};
use crate::scim::schema::{self, ResourceKind};
use crate::store::{get_json, put_json, Condition, Store, StoreError, Version};
use crate::users::{self, comp_str, etag, Page, Resource, Scope};
use crate::{limits, list, time, Env};

const RETRIES: usize = 8;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GroupRecord {
    pub id: String,
    pub created: String,
    pub last_modified: String,
    pub version: u64,
    /// SCIM attributes without id, meta, schemas and members.
    pub attributes: Map<String, Value>,
}

impl GroupRecord {
    pub fn display_name(&self) -> Option<&str> {
        self.attributes.get("displayName").and_then(Value::as_str)
    }
    pub fn external_id(&self) -> Option<&str> {
        self.attributes.get("externalId").and_then(Value::as_str)
    }

    /// The SCIM representation; `members` is added by the caller when wanted.
    pub fn render(&self, base: &str, members: Option<&[String]>) -> Value {
        let mut obj = Map::new();
        let schemas: Vec<Value> =
            schema::schemas_for(ResourceKind::Group, &self.attributes).into_iter().map(Value::from).collect();
        obj.insert("schemas".into(), Value::Array(schemas));
        obj.insert("id".into(), Value::from(self.id.clone()));
        for (k, v) in &self.attributes {
            obj.insert(k.clone(), v.clone());
        }
        if let Some(m) = members {
            let m: Vec<Value> = m
                .iter()
                .map(|u| serde_json::json!({"value": u, "$ref": format!("{base}/Users/{u}"), "type": "User"}))
                .collect();
            obj.insert("members".into(), Value::Array(m));
        }
        obj.insert(
            "meta".into(),
            serde_json::json!({
                "resourceType": "Group",
                "created": self.created,
                "lastModified": self.last_modified,
                "version": etag(self.version),
                "location": format!("{base}/Groups/{}", self.id),
            }),
        );
        Value::Object(obj)
    }
}

fn not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("Group {id:?} not found"))
}

pub async fn load<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    id: &str,
) -> ScimResult<Option<(GroupRecord, Version)>> {
    if !keys::valid_id(id) {
        return Ok(None);
    }
    get_json(env.store, &keys::group(t, id)).await
}

/// Takes the `members` attribute out of normalised attributes (members live in their own keys).
fn take_members(attrs: &mut Map<String, Value>) -> ScimResult<Vec<String>> {
    match attrs.remove("members") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(m) => Ok(dedup(schema::member_ids(&m)?)),
    }
}

/// Checks that every id names a user of this tenant, before anything is written.
///
/// For a change of group `gid`, a missing user's membership of it is first undone: the
/// leftover of an earlier add of that user that was cut short (the host died before
/// [`add_members`] found the user deleted under it and undid itself). The identity provider
/// retries a request that got no answer, so its retry is what cleans up; it costs one read,
/// on this error path only.
async fn check_members<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    gid: Option<&str>,
    ids: &[String],
) -> ScimResult<()> {
    for id in ids {
        if users::load(env, t, id).await?.is_none() {
            if let Some(gid) = gid {
                remove_members(env, t, gid, std::slice::from_ref(id)).await?;
            }
            return Err(ScimError::invalid_value(format!(
                "member {id:?} is not a user of this tenant (only users can be members)"
            )));
        }
    }
    Ok(())
}

pub async fn create<S: Store>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    body: &Value,
) -> ScimResult<(GroupRecord, Vec<String>)> {
    let mut attrs = schema::normalize(ResourceKind::Group, body)?;
    let members = take_members(&mut attrs)?;
    limits::check_members(members.len(), &env.config.limits)?;
    limits::check_resource(&attrs, &env.config.limits)?;
    let t = scope.tenant;
    check_members(env, t, None, &members).await?;
    let id = crate::tenants::random_hex(env, 16)?;
    let now = time::rfc3339(env.clock.now_millis());
    let rec = GroupRecord {
        id: id.clone(),
        created: now.clone(),
        last_modified: now,
        version: 1,
        attributes: attrs,
    };
    // The record, then its index entries and list position (see `index::register`).
    let key = keys::group(t, &id);
    put_json(env.store, &key, &rec, Condition::Any).await?;
    let mut entries = vec![(Index::GroupName, rec.display_name().unwrap_or_default())];
    entries.extend(rec.external_id().map(|x| (Index::GroupExternalId, x)));
    index::register(env, t, &key, &id, &entries, &List::Groups).await?;
    add_members(env, t, &id, &members).await?;
    Ok((rec, members))
}

pub async fn get<S: Store>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    id: &str,
    with_members: bool,
) -> ScimResult<Value> {
    let Some((rec, _)) = load(env, scope.tenant, id).await? else { return Err(not_found(id)) };
    let members = if with_members { Some(members(env, scope.tenant, id).await?) } else { None };
    Ok(rec.render(scope.base, members.as_deref()))
}

pub async fn members<S: Store>(env: &Env<'_, S>, t: &str, gid: &str) -> ScimResult<Vec<String>> {
    list::all(env, t, &List::Members(gid.to_owned())).await
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
}

/// Adds members; ids that already are members are skipped (Entra repeats adds).
async fn add_members<S: Store>(env: &Env<'_, S>, t: &str, gid: &str, uids: &[String]) -> ScimResult<()> {
    let mut added = Vec::new();
    let mut already = Vec::new();
    let list = List::Members(gid.to_owned());
    for uid in uids {
        match env.store.put(&keys::membership(t, gid, uid), b"1", Condition::Absent).await {
            Ok(_) => added.push(uid.clone()),
            // Already a member, unless an add stopped half-way (the store failed after the
            // membership key, and the client got 503): then the list or the user's groups
            // lack it, and this retry finishes that add (the push skips ids the list has; the
            // user's groups are written only if they change).
            Err(StoreError::Conflict) => {
                if list::listed(env, t, &list, uid, true).await? {
                    already.push(uid.clone());
                } else {
                    added.push(uid.clone());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    list::push(env, t, &List::Members(gid.to_owned()), &added).await?;
    for uid in added.iter().chain(&already) {
        update_user_groups(env, t, uid, |g| {
            if !g.iter().any(|x| x == gid) {
                g.push(gid.to_owned());
            }
        })
        .await?;
    }
    // A user deleted meanwhile (its delete removes the record before reading its groups, so
    // it may have missed this one): undo its membership.
    let mut gone = Vec::new();
    for uid in added {
        if env.store.get(&keys::user(t, &uid)).await?.is_none() {
            gone.push(uid);
        }
    }
    if !gone.is_empty() {
        remove_members(env, t, gid, &gone).await?;
    }
    Ok(())
}

async fn remove_members<S: Store>(env: &Env<'_, S>, t: &str, gid: &str, uids: &[String]) -> ScimResult<()> {
    let mut removed = Vec::new();
    let mut not_members = Vec::new();
    let list = List::Members(gid.to_owned());
    for uid in uids {
        let key = keys::membership(t, gid, uid);
        if env.store.get(&key).await?.is_some() {
            env.store.delete(&key, Condition::Any).await?;
            removed.push(uid.clone());
        } else if list::listed(env, t, &list, uid, false).await? {
            // A remove that stopped half-way (503 after the membership key went): finish it.
            removed.push(uid.clone());
        } else {
            not_members.push(uid.clone());
        }
    }
    list::remove(env, t, &List::Members(gid.to_owned()), &removed).await?;
    // The user's groups too (written only if they change: for a user that never was a member,
    // one read).
    for uid in removed.iter().chain(&not_members) {
        update_user_groups(env, t, uid, |g| g.retain(|x| x != gid)).await?;
    }
    Ok(())
}

/// The ids of the groups user `uid` belongs to.
pub async fn of_user<S: Store>(env: &Env<'_, S>, t: &str, uid: &str) -> ScimResult<Vec<String>> {
    Ok(get_json::<S, Vec<String>>(env.store, &keys::user_groups(t, uid))
        .await?
        .map(|(g, _)| g)
        .unwrap_or_default())
}

/// Read-modify-write of a user's group set, retried on concurrent changes.
async fn update_user_groups<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    uid: &str,
    change: impl Fn(&mut Vec<String>),
) -> ScimResult<()> {
    let key = keys::user_groups(t, uid);
    for _ in 0..RETRIES {
        let (mut groups, cond) = match get_json::<S, Vec<String>>(env.store, &key).await? {
            Some((g, v)) => (g, Condition::Version(v)),
            None => (Vec::new(), Condition::Absent),
        };
        let before = groups.clone();
        change(&mut groups);
        if groups == before {
            return Ok(());
        }
        let res = if groups.is_empty() {
            match cond {
                Condition::Absent => return Ok(()),
                c => env.store.delete(&key, c).await,
            }
        } else {
            put_json(env.store, &key, &groups, cond).await.map(|_| ())
        };
        match res {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Removes a user from every group it belongs to (hard delete of the user). Each group gets a
/// new version: its members changed, so a client's cached copy (`If-None-Match`) is stale.
pub async fn remove_user_everywhere<S: Store>(env: &Env<'_, S>, t: &str, uid: &str) -> ScimResult<()> {
    let key = keys::user_groups(t, uid);
    let groups = get_json::<S, Vec<String>>(env.store, &key).await?.map(|(g, _)| g).unwrap_or_default();
    for gid in groups {
        env.store.delete(&keys::membership(t, &gid, uid), Condition::Any).await?;
        list::remove(env, t, &List::Members(gid.clone()), std::slice::from_ref(&uid.to_owned())).await?;
        match update(env, t, &gid, &Preconditions::NONE, true, |old| Ok(old.attributes.clone())).await {
            // A group deleted meanwhile needs no new version.
            Err(e) if e.status == http::StatusCode::NOT_FOUND => {}
            other => {
                other?;
            }
        }
    }
    env.store.delete(&key, Condition::Any).await?;
    Ok(())
}

/// Writes the attributes `make` makes of the stored record (moving index entries), retried on
/// concurrent changes. `pre` is checked against each version read, and the write is
/// conditional on that version. `touch`: write a new version even if the attributes stay (the
/// request changes members, which are part of the resource its version tags).
async fn update<S, F>(
    env: &Env<'_, S>,
    t: &str,
    id: &str,
    pre: &Preconditions,
    touch: bool,
    make: F,
) -> ScimResult<GroupRecord>
where
    S: Store,
    F: Fn(&GroupRecord) -> ScimResult<Map<String, Value>>,
{
    for _ in 0..RETRIES {
        let Some((old, ver)) = load(env, t, id).await? else { return Err(not_found(id)) };
        pre.check_write(&format!("Group {id}"), &etag(old.version))?;
        let attrs = make(&old)?;
        if attrs == old.attributes {
            if !touch {
                return Ok(old);
            }
        } else {
            // Only a change must fit the limits: a group stored under larger ones stays writable.
            limits::check_resource(&attrs, &env.config.limits)?;
        }
        let rec = GroupRecord {
            attributes: attrs,
            last_modified: time::rfc3339(env.clock.now_millis()),
            version: old.version + 1,
            ..old.clone()
        };
        if rec.display_name().is_none_or(str::is_empty) {
            return Err(ScimError::invalid_value("displayName is required and cannot be removed"));
        }
        let moves = [
            (Index::GroupName, old.display_name(), rec.display_name()),
            (Index::GroupExternalId, old.external_id(), rec.external_id()),
        ];
        if index::rewrite(env, t, id, moves, &keys::group(t, id), &rec, ver).await? {
            return Ok(rec);
        }
    }
    Err(StoreError::Conflict.into())
}

/// PATCH: attribute ops on the record, member ops on the membership keys. Answers 204; returns
/// the group's version for its `ETag`. A PATCH that names members writes a new version first
/// (conditional on the one `pre` was checked against), then changes the members.
pub async fn patch<S: Store>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    id: &str,
    body: &Value,
    pre: &Preconditions,
) -> ScimResult<u64> {
    let t = scope.tenant;
    limits::check_patch_operations(body, &env.config.limits)?;
    let ops = patch::parse_request(body)?;
    let (attr_ops, changes) = patch::split_members(ops)?;
    let named: usize = changes
        .iter()
        .map(|c| match c {
            MemberChange::Add(ids) | MemberChange::Remove(ids) | MemberChange::Replace(ids) => ids.len(),
            MemberChange::RemoveAll => 0,
        })
        .sum();
    limits::check_members(named, &env.config.limits)?;
    if load(env, t, id).await?.is_none() {
        return Err(not_found(id));
    }
    for c in &changes {
        if let MemberChange::Add(ids) | MemberChange::Replace(ids) = c {
            check_members(env, t, Some(id), ids).await?;
        }
    }
    let rec = update(env, t, id, pre, !changes.is_empty(), |old| {
        let mut attrs = old.attributes.clone();
        if !attr_ops.is_empty() {
            patch::apply(ResourceKind::Group, &mut attrs, &attr_ops)?;
            attrs.remove("members");
        }
        Ok(attrs)
    })
    .await?;
    for c in changes {
        match c {
            MemberChange::Add(ids) => add_members(env, t, id, &dedup(ids)).await?,
            MemberChange::Remove(ids) => remove_members(env, t, id, &dedup(ids)).await?,
            MemberChange::RemoveAll => {
                let all = members(env, t, id).await?;
                remove_members(env, t, id, &all).await?;
            }
            MemberChange::Replace(ids) => replace_members(env, t, id, dedup(ids)).await?,
        }
    }
    Ok(rec.version)
}

async fn replace_members<S: Store>(env: &Env<'_, S>, t: &str, id: &str, ids: Vec<String>) -> ScimResult<()> {
    let current = members(env, t, id).await?;
    let gone: Vec<String> = current.iter().filter(|m| !ids.contains(m)).cloned().collect();
    let new: Vec<String> = ids.into_iter().filter(|m| !current.contains(m)).collect();
    remove_members(env, t, id, &gone).await?;
    add_members(env, t, id, &new).await
}

/// PUT: replaces attributes and the member list (a new version when either changes).
pub async fn replace<S: Store>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    id: &str,
    body: &Value,
    pre: &Preconditions,
) -> ScimResult<(GroupRecord, Vec<String>)> {
    let t = scope.tenant;
    let mut attrs = schema::normalize(ResourceKind::Group, body)?;
    let new_members = take_members(&mut attrs)?;
    limits::check_members(new_members.len(), &env.config.limits)?;
    if load(env, t, id).await?.is_none() {
        return Err(not_found(id));
    }
    check_members(env, t, Some(id), &new_members).await?;
    let current: std::collections::BTreeSet<String> = members(env, t, id).await?.into_iter().collect();
    let touch = current != new_members.iter().cloned().collect();
    let rec = update(env, t, id, pre, touch, |_| Ok(attrs.clone())).await?;
    replace_members(env, t, id, new_members.clone()).await?;
    Ok((rec, new_members))
}

/// DELETE: the group record first, conditional on the version `pre` was checked against, then
/// its memberships, member list, list position and index entries.
pub async fn delete<S: Store>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    id: &str,
    pre: &Preconditions,
) -> ScimResult<()> {
    let t = scope.tenant;
    for _ in 0..RETRIES {
        let Some((rec, ver)) = load(env, t, id).await? else {
            finish_delete(env, t, id).await?;
            return Err(not_found(id));
        };
        pre.check_write(&format!("Group {id}"), &etag(rec.version))?;
        match env.store.delete(&keys::group(t, id), Condition::Version(ver)).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
        clear_members(env, t, id).await?;
        list::remove(env, t, &List::Groups, std::slice::from_ref(&rec.id)).await?;
        if let Some(n) = rec.display_name() {
            index::release(env, t, Index::GroupName, n, id).await?;
        }
        if let Some(x) = rec.external_id() {
            index::release(env, t, Index::GroupExternalId, x, id).await?;
        }
        return Ok(());
    }
    Err(StoreError::Conflict.into())
}

/// Removes every membership of a group and its member list.
async fn clear_members<S: Store>(env: &Env<'_, S>, t: &str, id: &str) -> ScimResult<()> {
    let list_key = List::Members(id.to_owned());
    for uid in list::all(env, t, &list_key).await? {
        env.store.delete(&keys::membership(t, id, &uid), Condition::Any).await?;
        update_user_groups(env, t, &uid, |g| g.retain(|x| x != id)).await?;
    }
    list::clear(env, t, &list_key).await
}

/// What a delete that failed after removing the record leaves (its members, its list
/// position) is removed when the delete is retried. One read when nothing is left. (Index
/// entries naming a missing record are taken over or dropped by later claims.)
async fn finish_delete<S: Store>(env: &Env<'_, S>, t: &str, id: &str) -> ScimResult<()> {
    if !keys::valid_id(id) || !list::contains(env, t, &List::Groups, id).await? {
        return Ok(());
    }
    clear_members(env, t, id).await?;
    list::remove(env, t, &List::Groups, &[id.to_owned()]).await
}

fn case_exact(p: &filter::AttrPath) -> bool {
    schema::case_exact(ResourceKind::Group, p)
}

/// GET /Groups. `displayName`, `externalId` and `id` equalities use the indexes; a filter on
/// `members` is answered from the membership keys of the ids it names, never by loading
/// member lists. List responses carry `members` only when `with_members` (asked for by
/// `attributes=members`), since a page of large groups would be unbounded.
pub async fn query<S: Store>(
    env: &Env<'_, S>,
    scope: &Scope<'_>,
    filter: Option<&Filter>,
    start: u64,
    count: u64,
    with_members: bool,
) -> ScimResult<Page> {
    let t = scope.tenant;
    let ids = match filter {
        None => {
            let total = list::len(env, t, &List::Groups).await?;
            let mut resources = Vec::new();
            for id in list::page(env, t, &List::Groups, start, count).await? {
                if let Some((r, _)) = load(env, t, &id).await? {
                    let m = if with_members { Some(members(env, t, &id).await?) } else { None };
                    resources.push(Resource::Value(r.render(scope.base, m.as_deref())));
                }
            }
            return Ok(Page { total, resources });
        }
        Some(f) => match index::candidates(
            env,
            t,
            f,
            schema::GROUP_SCHEMA,
            &[("displayName", Index::GroupName), ("externalId", Index::GroupExternalId)],
        )
        .await?
        {
            Some(c) => c,
            None => list::all(env, t, &List::Groups).await?,
        },
    };
    let Some(f) = filter else { return Ok(Page { total: 0, resources: vec![] }) };
    let probes: Vec<String> =
        filter::compared_values(f, "members").into_iter().filter_map(comp_str).collect();
    let mut matched = Vec::new();
    for id in ids {
        let Some((r, _)) = load(env, t, &id).await? else { continue };
        // Only the members the filter asks about, from their membership keys.
        let mut probe_hits = Vec::new();
        for uid in &probes {
            if keys::valid_id(uid) && env.store.get(&keys::membership(t, &id, uid)).await?.is_some() {
                probe_hits.push(uid.to_owned());
            }
        }
        let v = r.render(scope.base, Some(&probe_hits));
        if filter::matches(f, &v, &case_exact) {
            let m = if with_members { Some(members(env, t, &id).await?) } else { None };
            matched.push(r.render(scope.base, m.as_deref()));
        }
    }
    let total = matched.len() as u64;
    let resources = matched
        .into_iter()
        .skip(usize::try_from(start).unwrap_or(usize::MAX))
        .take(usize::try_from(count).unwrap_or(usize::MAX))
        .map(Resource::Value)
        .collect();
    Ok(Page { total, resources })
}
