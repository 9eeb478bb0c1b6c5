//! Blocks: what removing a user by hand leaves behind, so that the identity provider's next
//! cycle cannot bring the person back.
//!
//! The product guide's urgent removal ("manually remove them from the Users page") was undone
//! by Entra's next cycle that touched the user: its PATCH got 404 and Entra created the user
//! again with POST, or its match-before-create found nothing and POSTed. So a removal through
//! the admin API leaves a **block** on the identity — its old SCIM id, its `userName`
//! (case-insensitively) and, where the configuration makes `externalId` unique, its
//! `externalId` — and SCIM cannot create, replace or patch (re-enable) it until an
//! administrator lifts the block, or Entra hard-deletes the user (`DELETE` of the old id),
//! which lifts it too.
//!
//! Why the `externalId` only when it is unique (`uniqueness.externalId`): by default two people
//! may share one (RFC 7643 gives it no uniqueness; Entra fills it from `mailNickname`). A block
//! on a shared value would refuse the *other* person — a create under another `userName` with
//! the same `externalId` is, by default, another person. Entra itself does not need it: after a
//! removal it keeps the user's id and sends PATCH (blocked by id), and its match-before-create
//! queries the matching attribute, `userName` by default (blocked by name).
//!
//! Layout (`crate::keys`): the block record `block/{id}`, listed in the tenant's `blocks` list
//! for the admin API. The `userName`'s unique index entry is not released by the removal: it
//! stays, pointing at the removed id, so a create's existing `userName` read finds the block
//! without another round trip, and no claim can take the name over (`index::claim` asks
//! [`get`] before taking over an entry whose record is gone). A blocked `externalId`
//! ([`Block::external_id_blocked`]) has its own key `block/externalId/{value}` → id: one read
//! per create that carries an `externalId`, only where `externalId` is unique (the `externalId`
//! index holds several ids, so it cannot carry the block).
//!
//! Order of writes, so that an outage at any point never lets the person back in without the
//! block: a removal writes the block (record, `externalId` key, list) before it deletes the
//! user; a lift (`users::unblock`) releases the `userName` entry and the `externalId` key
//! before it deletes the record, and unlists it last.

use serde::{Deserialize, Serialize};

use crate::error::{ScimError, ScimResult};
use crate::keys::{self, List};
use crate::log::Actor;
use crate::store::{get_json, put_json, Condition, Store, StoreError};
use crate::{list, Env};

/// What the store holds for a block (`keys::block`): who was removed, when and by whom.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Block {
    /// The removed user's SCIM id.
    pub id: String,
    pub user_name: String,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// RFC 3339.
    pub blocked_at: String,
    pub blocked_by: Actor,
    /// Whether the block also refuses its `externalId` (and holds its key): the configuration
    /// made `externalId` unique when it was placed (see the module doc). Blocks written before
    /// this field existed held the key.
    #[serde(default = "held_before_the_field")]
    pub external_id_blocked: bool,
}

fn held_before_the_field() -> bool {
    true
}

impl Block {
    /// The answer to a SCIM write that hits this block: **403**, without `scimType`.
    ///
    /// Chosen so that Entra shows a failure it does not "fix" on its own:
    /// - not 404: Entra answers a 404 on PATCH or PUT by creating the user again with POST —
    ///   the very path the block closes;
    /// - not 409: Entra reads a 409 on POST as "the user already exists", runs its
    ///   match-before-create again (which finds nothing: the user is gone) and logs an entry
    ///   conflict that administrators resolve by changing matching attributes;
    /// - not 400: that reads as a data or attribute-mapping error to correct in Entra.
    ///
    /// 403 is "understood and refused": Entra logs the export as failed with this `detail`,
    /// keeps the user in escrow (retried after 6 h, 12 h, then daily) and changes nothing.
    /// It is one object's failure, far below Entra's quarantine thresholds. No `scimType`:
    /// RFC 7644's only 403 type, `sensitive`, is about sensitive data in a URL.
    pub fn refusal(&self) -> ScimError {
        ScimError::forbidden(format!(
            "User {:?} was removed and blocked by a tenant administrator at {}: SCIM cannot create, \
             replace or re-enable it until an administrator lifts the block (Users page, state \
             \"Blocked\", Unblock); deleting the user in the identity provider also lifts it",
            self.user_name, self.blocked_at
        ))
    }
}

/// The block on the removed user `id`, if any.
pub async fn get<S: Store>(env: &Env<'_, S>, t: &str, id: &str) -> ScimResult<Option<Block>> {
    if !keys::valid_id(id) {
        return Ok(None);
    }
    Ok(get_json::<S, Block>(env.store, &keys::block(t, id)).await?.map(|(b, _)| b))
}

/// The block on `external_id`, if any: one read, two when there is one. Only where the
/// configuration makes `externalId` unique; otherwise no block covers it (and no read).
pub async fn on_external_id<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    external_id: &str,
) -> ScimResult<Option<Block>> {
    if !env.config.uniqueness.external_id {
        return Ok(None);
    }
    let Some(held) = env.store.get(&keys::block_external_id(t, external_id)).await? else {
        return Ok(None);
    };
    let id = String::from_utf8_lossy(&held.value);
    // A key whose block is gone is the leftover of a lift cut short: no block.
    Ok(get(env, t, &id)
        .await?
        .filter(|b| b.external_id_blocked && b.external_id.as_deref() == Some(external_id)))
}

/// Writes the block: its record, its `externalId` key (if it blocks the `externalId`), and
/// (`first`) its list position. A
/// removal retried after a conflict writes it again with `first` false: listed already. The
/// caller keeps the `userName` entry.
pub async fn place<S: Store>(env: &Env<'_, S>, t: &str, block: &Block, first: bool) -> ScimResult<()> {
    // An earlier removal of this id that was cut short may have listed it already.
    let earlier = first && get(env, t, &block.id).await?.is_some();
    put_json(env.store, &keys::block(t, &block.id), block, Condition::Any).await?;
    if let Some(x) = block.external_id.as_deref().filter(|_| block.external_id_blocked) {
        env.store.put(&keys::block_external_id(t, x), block.id.as_bytes(), Condition::Any).await?;
    }
    let id = std::slice::from_ref(&block.id);
    if earlier {
        list::ensure(env, t, &List::Blocks, &block.id).await?;
    } else if first {
        list::push(env, t, &List::Blocks, id).await?;
    }
    Ok(())
}

/// Deletes the `externalId` key `x` if it still names block `id`.
pub async fn release_external_id<S: Store>(env: &Env<'_, S>, t: &str, x: &str, id: &str) -> ScimResult<()> {
    let key = keys::block_external_id(t, x);
    if let Some(held) = env.store.get(&key).await? {
        if held.value == id.as_bytes() {
            match env.store.delete(&key, Condition::Version(held.version)).await {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Deletes the block's `externalId` key, its record, then its list position (the caller has
/// released the `userName` entry before).
pub async fn remove<S: Store>(env: &Env<'_, S>, t: &str, block: &Block) -> ScimResult<()> {
    if let Some(x) = block.external_id.as_deref().filter(|_| block.external_id_blocked) {
        release_external_id(env, t, x, &block.id).await?;
    }
    env.store.delete(&keys::block(t, &block.id), Condition::Any).await?;
    list::remove(env, t, &List::Blocks, std::slice::from_ref(&block.id)).await
}

/// Unlists `id` if it is listed without a block (a lift cut short after deleting the record).
pub async fn unlist<S: Store>(env: &Env<'_, S>, t: &str, id: &str) -> ScimResult<()> {
    if keys::valid_id(id) && list::contains(env, t, &List::Blocks, id).await? {
        list::remove(env, t, &List::Blocks, &[id.to_owned()]).await?;
    }
    Ok(())
}

/// A page of the tenant's blocks, by list position: (total, blocks).
pub async fn page<S: Store>(
    env: &Env<'_, S>,
    t: &str,
    start: u64,
    count: u64,
) -> ScimResult<(u64, Vec<Block>)> {
    let total = list::len(env, t, &List::Blocks).await?;
    let mut out = Vec::new();
    for id in list::page(env, t, &List::Blocks, start, count).await? {
        if let Some(b) = get(env, t, &id).await? {
            out.push(b);
        }
    }
    Ok((total, out))
}
