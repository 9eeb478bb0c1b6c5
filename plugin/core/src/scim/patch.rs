//! RFC 7644 §3.5.2 PATCH, with both dialects Microsoft Entra ID speaks (the default one and
//! the `aadOptscim062020` one). Pure: a parsed request is applied to the stored attribute
//! map that [`schema::normalize`] produces (no `id`/`meta`/`schemas`; enterprise attributes
//! inside the object keyed by the enterprise URN).
//!
//! Three steps, so the service can keep group memberships apart from the group:
//! 1. [`parse_request`] checks the envelope and parses every `path`;
//! 2. for groups, [`split_members`] takes out every operation on `members` as a
//!    [`MemberChange`] (memberships are separate keys; one change is O(1));
//! 3. [`apply`] runs the rest, all or nothing, and re-checks the result with the rules of
//!    [`schema::normalize`].
//!
//! # Behaviour beyond the RFC letter (each one is something a real client sends)
//! - `op` in any case (`Add`, `replace`, `REMOVE`); the `Operations` key in any case; a
//!   missing `schemas` is tolerated.
//! - `"True"` / `"False"` strings for boolean attributes (Entra's disable request), via the
//!   schema table.
//! - Path-less `add`/`replace` values whose keys are attribute *paths*: dotted
//!   (`name.givenName`), URN-prefixed (`urn:…:enterprise:2.0:User:employeeNumber`), the
//!   extension URN itself with an object, even filtered paths (`emails[type eq "work"].value`).
//!   `id`, `meta`, `schemas` and readOnly attributes in such a value are skipped (some clients
//!   send back the whole resource); in a `path` they are 400 `mutability`.
//! - `add`/`replace` on a filtered path that matches no element **creates** the element from
//!   the filter's `eq` conditions (`emails[type eq "home"].value` → `{"type":"home","value":…}`);
//!   later operations with the same filter then find and extend that element, so
//!   `addresses[type eq "work"].locality` and `….postalCode` end up in one address. RFC 7644
//!   would answer `noTarget`; Entra sends these for attributes the user did not have yet.
//!   A filter without usable `eq` conditions (`emails[value co "x"]`) still gets `noTarget`.
//! - `remove` with a filter that matches nothing is a no-op (the state asked for already
//!   holds), so Entra's retries never fail on it.
//! - `remove` of a multi-valued attribute *with* a `value` removes only the listed elements
//!   (compared by their `value`), which is what Entra's default dialect means by
//!   `{"op":"Remove","path":"members","value":[…]}`; RFC-literal servers wipe the attribute.
//! - `add`/`replace` with a `null` value is a `remove` of the target.
//! - `manager` without its URN is the enterprise manager; a bare string or a one-element
//!   array is its `value`; an empty string clears it. A `manager` value replaces the whole
//!   manager (its `$ref` would otherwise keep pointing at the previous one), while a `name`
//!   value is merged sub-attribute by sub-attribute (RFC 7644 §3.5.2.1 / §3.5.2.3).
//! - `add`/`replace` of `attr.sub` on a multi-valued attribute without a filter
//!   (`emails.display`) sets the sub-attribute on every element, or creates one element if
//!   there is none; `remove` removes it from every element.
//! - A filtered `replace` without sub-attribute replaces each matched element with the value,
//!   keeping the filter's `eq` conditions (`replace emails[type eq "work"]` with
//!   `{"value":"x"}` leaves a `work` email, not an untyped one).
//! - Unknown attributes are stored as sent (custom extensions exist); `password` is accepted
//!   and discarded like everywhere else (see [`schema::normalize`]).

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::scim::filter::{self, AttrPath, CompValue, CompareOp, Filter, PatchPath};
use crate::scim::schema::{
    self, container_mut, find_key, merge_into, resolve_sub, AttrDef, AttrRef, AttrType, Container, Located,
    Mutability, ResourceKind, SubRef, PATCH_OP_SCHEMA,
};

/// A PATCH operation's `op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

/// One parsed PATCH operation. `value: Some(Value::Null)` is an explicit `null` (treated as
/// a remove of the target), `None` an absent `value`.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchOp {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// The value of `key` in `obj`, the key compared ignoring ASCII case.
fn get_ci<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// Prefixes an error's detail with the operation it is about.
fn at(index: usize) -> impl Fn(ScimError) -> ScimError {
    move |mut e| {
        e.detail = format!("Operations[{index}]: {}", e.detail);
        e
    }
}

/// Parses a PATCH request body (RFC 7644 §3.5.2).
///
/// 400 `invalidSyntax`: not an object, `schemas` present without the PatchOp URN, no
/// `Operations` array or an empty one, an `op` that is not add/replace/remove, add/replace
/// without `value`. 400 `invalidPath`: a path that does not parse (with the parser's message
/// and offset). 400 `noTarget`: remove without a path. 400 `invalidValue`: a path-less
/// add/replace whose value is not an object.
pub fn parse_request(body: &Value) -> ScimResult<Vec<PatchOp>> {
    let obj =
        body.as_object().ok_or_else(|| ScimError::invalid_syntax("a PATCH body must be a JSON object"))?;
    if let Some(schemas) = get_ci(obj, "schemas") {
        let is_patch_op = |s: &Value| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA));
        let ok = match schemas {
            Value::Array(items) => items.iter().any(is_patch_op),
            other => is_patch_op(other),
        };
        if !ok {
            return Err(ScimError::invalid_syntax(format!("\"schemas\" must contain \"{PATCH_OP_SCHEMA}\"")));
        }
    }
    let ops = get_ci(obj, "Operations")
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH body needs an \"Operations\" array"))?
        .as_array()
        .ok_or_else(|| ScimError::invalid_syntax("\"Operations\" must be an array"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax("\"Operations\" holds no operation"));
    }
    ops.iter().enumerate().map(|(i, op)| parse_op(op).map_err(at(i))).collect()
}

fn parse_op(op: &Value) -> ScimResult<PatchOp> {
    let obj =
        op.as_object().ok_or_else(|| ScimError::invalid_syntax("an operation must be a JSON object"))?;
    let kind = match get_ci(obj, "op").and_then(Value::as_str) {
        Some(s) if s.eq_ignore_ascii_case("add") => OpKind::Add,
        Some(s) if s.eq_ignore_ascii_case("replace") => OpKind::Replace,
        Some(s) if s.eq_ignore_ascii_case("remove") => OpKind::Remove,
        Some(s) => {
            return Err(ScimError::invalid_syntax(format!(
                "unknown op {s:?}: expected \"add\", \"replace\" or \"remove\""
            )))
        }
        None => return Err(ScimError::invalid_syntax("\"op\" must be \"add\", \"replace\" or \"remove\"")),
    };
    let path = match get_ci(obj, "path") {
        None | Some(Value::Null) => None,
        // Some clients send `"path": ""` for "no path".
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(parse_path(s)?),
        Some(_) => return Err(ScimError::invalid_path("\"path\" must be a string")),
    };
    let value = get_ci(obj, "value").cloned();
    match (kind, &path, &value) {
        (OpKind::Remove, None, _) => Err(ScimError::no_target("a remove operation needs a \"path\"")),
        (OpKind::Add | OpKind::Replace, _, None) => {
            Err(ScimError::invalid_syntax("an add or replace operation needs a \"value\""))
        }
        (OpKind::Add | OpKind::Replace, None, Some(v)) if !v.is_object() => {
            Err(ScimError::invalid_value("without a \"path\", \"value\" must be an object of attributes"))
        }
        _ => Ok(PatchOp { op: kind, path, value }),
    }
}

fn parse_path(s: &str) -> ScimResult<PatchPath> {
    filter::parse_path(s).map_err(|e| {
        ScimError::invalid_path(format!("invalid path {s:?}: {} (at offset {})", e.message, e.offset))
    })
}

// ---------------------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------------------

/// Applies `ops` in order to the stored attributes of a `kind` resource, all or nothing:
/// they run on a copy that replaces `resource` only if every operation succeeds and the
/// result passes [`schema::normalize`] (e.g. `userName` stays a non-empty string). On error
/// `resource` is unchanged.
///
/// Group `members` operations must have been taken out with [`split_members`] first; one
/// reaching here is a 500 (the membership would otherwise be stored inside the group).
pub fn apply(kind: ResourceKind, resource: &mut Map<String, Value>, ops: &[PatchOp]) -> ScimResult<()> {
    let mut work = resource.clone();
    for (i, op) in ops.iter().enumerate() {
        apply_op(kind, &mut work, op).map_err(at(i))?;
    }
    *resource = schema::normalize(kind, &Value::Object(work))?;
    Ok(())
}

/// Where one edit lands.
struct Target<'a> {
    loc: Located<'a>,
    /// `emails[type eq "work"]`
    filter: Option<&'a Filter>,
    /// The sub-attribute after a filter: `emails[type eq "work"].value`.
    filter_sub: Option<&'a str>,
    /// From an operation's `path` (readOnly targets are errors) rather than from a key of
    /// a path-less value (readOnly targets are skipped).
    explicit: bool,
}

fn apply_op(kind: ResourceKind, root: &mut Map<String, Value>, op: &PatchOp) -> ScimResult<()> {
    match &op.path {
        Some(path) => {
            let key = schema::path_key(&path.attr);
            let target = Target {
                loc: schema::locate(kind, &key),
                filter: path.filter.as_ref(),
                filter_sub: path.sub.as_deref(),
                explicit: true,
            };
            edit(kind, root, op.op, &target, op.value.as_ref())
        }
        None => {
            let Some(Value::Object(attrs)) = &op.value else {
                return Err(match op.op {
                    OpKind::Remove => ScimError::no_target("a remove operation needs a \"path\""),
                    _ => ScimError::invalid_value(
                        "without a \"path\", \"value\" must be an object of attributes",
                    ),
                });
            };
            for (key, value) in attrs {
                edit_key(kind, root, Container::Root, op.op, key, value)?;
            }
            Ok(())
        }
    }
}

/// One key of a path-less value (or of an extension object value): an attribute path.
fn edit_key(
    kind: ResourceKind,
    root: &mut Map<String, Value>,
    container: Container<'_>,
    op: OpKind,
    key: &str,
    value: &Value,
) -> ScimResult<()> {
    if container == Container::Root && key.contains('[') {
        let path = parse_path(key)?;
        let attr_key = schema::path_key(&path.attr);
        let target = Target {
            loc: schema::locate(kind, &attr_key),
            filter: path.filter.as_ref(),
            filter_sub: path.sub.as_deref(),
            explicit: false,
        };
        return edit(kind, root, op, &target, Some(value));
    }
    let loc = match container {
        Container::Root => schema::locate(kind, key),
        other => schema::locate_in(kind, other, key),
    };
    edit(kind, root, op, &Target { loc, filter: None, filter_sub: None, explicit: false }, Some(value))
}

fn edit(
    kind: ResourceKind,
    root: &mut Map<String, Value>,
    op: OpKind,
    target: &Target<'_>,
    value: Option<&Value>,
) -> ScimResult<()> {
    // `null` for add/replace: remove the target (Entra skips nulls; other clients send them).
    let (op, value) = match (op, value) {
        (OpKind::Add | OpKind::Replace, Some(Value::Null)) => (OpKind::Remove, None),
        (OpKind::Add | OpKind::Replace, None) => {
            return Err(ScimError::invalid_syntax("an add or replace operation needs a \"value\""))
        }
        (op, value) => (op, value),
    };
    let loc = &target.loc;
    let Some(attr) = loc.attr else {
        return edit_container(kind, root, op, loc.container, value, target.explicit);
    };
    if let Some(reason) = protected(loc, &attr, target.filter_sub) {
        return if target.explicit { Err(ScimError::mutability(reason)) } else { Ok(()) };
    }
    if kind == ResourceKind::Group
        && loc.container == Container::Root
        && attr.def.is_some_and(|d| d.name == "members")
    {
        return Err(ScimError::internal(
            "group members must be taken out of a PATCH with split_members before apply",
        ));
    }
    let container_key = match loc.container {
        Container::Root => None,
        Container::Ext(ext) => Some(ext.id),
        Container::Other(urn) => Some(urn),
    };
    let Some(container_key) = container_key else {
        return edit_attr(root, op, attr, target, value);
    };
    if op == OpKind::Remove && find_key(root, container_key).is_none() {
        return Ok(());
    }
    let stored_key = find_key(root, container_key).unwrap_or_else(|| container_key.to_owned());
    if let Some(map) = container_mut(root, &stored_key) {
        edit_attr(map, op, attr, target, value)?;
    }
    // An extension object left empty is no extension at all (and no `schemas` entry).
    if root.get(&stored_key).and_then(Value::as_object).is_some_and(Map::is_empty) {
        root.remove(&stored_key);
    }
    Ok(())
}

/// Why a target may not be written, if it may not.
fn protected(loc: &Located<'_>, attr: &AttrRef<'_>, filter_sub: Option<&str>) -> Option<String> {
    if loc.container == Container::Root && attr.name.eq_ignore_ascii_case("schemas") {
        return Some("\"schemas\" is managed by the service provider".to_owned());
    }
    let read_only = |d: Option<&AttrDef>| d.is_some_and(|d| d.mutability == Mutability::ReadOnly);
    if read_only(attr.def) {
        return Some(format!("\"{}\" is readOnly", attr.name));
    }
    if let Some(sub) = attr.sub.filter(|s| read_only(s.def)) {
        return Some(format!("\"{}.{}\" is readOnly", attr.name, sub.name));
    }
    let filter_sub = filter_sub.map(|s| resolve_sub(attr.def, s)).filter(|s| read_only(s.def));
    filter_sub.map(|sub| format!("\"{}.{}\" is readOnly", attr.name, sub.name))
}

/// A path naming a whole schema: the enterprise extension (`urn:…:enterprise:2.0:User`), an
/// unknown extension, or the core schema (its value's keys are root attributes).
fn edit_container(
    kind: ResourceKind,
    root: &mut Map<String, Value>,
    op: OpKind,
    container: Container<'_>,
    value: Option<&Value>,
    explicit: bool,
) -> ScimResult<()> {
    let container_key = match container {
        Container::Root => None,
        Container::Ext(ext) => Some(ext.id),
        Container::Other(urn) => Some(urn),
    };
    if op == OpKind::Remove {
        return match container_key {
            Some(key) => {
                if let Some(stored) = find_key(root, key) {
                    root.remove(&stored);
                }
                Ok(())
            }
            None if explicit => Err(ScimError::mutability("the core schema of a resource cannot be removed")),
            None => Ok(()),
        };
    }
    let Some(Value::Object(attrs)) = value else {
        return Err(ScimError::invalid_value(format!(
            "the value for \"{}\" must be an object of its attributes",
            container_key.unwrap_or(kind.core().id)
        )));
    };
    for (key, v) in attrs {
        edit_key(kind, root, container, op, key, v)?;
    }
    Ok(())
}

/// Edits `attr` inside `map` (the resource or an extension object).
fn edit_attr(
    map: &mut Map<String, Value>,
    op: OpKind,
    attr: AttrRef<'_>,
    target: &Target<'_>,
    value: Option<&Value>,
) -> ScimResult<()> {
    let key = find_key(map, attr.name).unwrap_or_else(|| attr.name.to_owned());
    let multi = match attr.def {
        Some(d) => d.multi_valued,
        None => target.filter.is_some() || map.get(&key).is_some_and(Value::is_array),
    };
    if let Some(filter) = target.filter {
        if attr.sub.is_some() {
            return Err(ScimError::invalid_path("a value filter must follow a multi-valued attribute"));
        }
        if !multi {
            return Err(ScimError::invalid_path(format!(
                "\"{}\" is not multi-valued, so it cannot take a value filter",
                attr.name
            )));
        }
        let sub = target.filter_sub.map(|s| resolve_sub(attr.def, s));
        return edit_filtered(map, &key, attr, op, filter, sub, value);
    }
    match attr.sub {
        Some(sub) => edit_sub(map, &key, attr, multi, op, sub, value),
        None => edit_whole(map, &key, attr, multi, op, value),
    }
}

/// `attr` without filter or sub-attribute.
fn edit_whole(
    map: &mut Map<String, Value>,
    key: &str,
    attr: AttrRef<'_>,
    multi: bool,
    op: OpKind,
    value: Option<&Value>,
) -> ScimResult<()> {
    let Some(v) = value.filter(|_| op != OpKind::Remove) else {
        if attr.def.is_some_and(|d| d.required) {
            return Err(ScimError::mutability(format!(
                "\"{}\" is required and cannot be removed",
                attr.name
            )));
        }
        match value.filter(|v| multi && !v.is_null()) {
            Some(listed) => remove_listed(map, key, attr.def, listed),
            None => {
                map.remove(key);
            }
        }
        return Ok(());
    };
    let Some(def) = attr.def else {
        // Unknown attribute: as sent; objects merge and arrays grow like known ones.
        match (map.get_mut(key), v) {
            (Some(Value::Array(existing)), Value::Array(new)) if op == OpKind::Add => {
                append_unique(existing, new)
            }
            (Some(Value::Object(existing)), Value::Object(new)) => merge_into(existing, new.clone()),
            _ => {
                map.insert(key.to_owned(), v.clone());
            }
        }
        return Ok(());
    };
    if def.multi_valued {
        // A single element where an array belongs is taken as a one-element array.
        let one = [v.clone()];
        let given = match v {
            Value::Array(items) => items.as_slice(),
            _ => one.as_slice(),
        };
        let mut items = Vec::with_capacity(given.len());
        for item in given {
            if let Some(n) = schema::normalize_single(def, item, def.name)? {
                items.push(n);
            }
        }
        match (op, map.get_mut(key)) {
            (OpKind::Add, Some(Value::Array(existing))) => append_unique(existing, &items),
            _ if items.is_empty() => {
                map.remove(key);
            }
            _ => {
                let mut unique = Vec::with_capacity(items.len());
                append_unique(&mut unique, &items);
                map.insert(key.to_owned(), Value::Array(unique));
            }
        }
        return Ok(());
    }
    match schema::normalize_value(def, v, def.name)? {
        None => {
            if def.required {
                return Err(ScimError::mutability(format!(
                    "\"{}\" is required and cannot be removed",
                    def.name
                )));
            }
            map.remove(key);
        }
        Some(Value::Object(new)) if def.ty == AttrType::Complex && !def.has_value_sub() => {
            match map.get_mut(key) {
                Some(Value::Object(existing)) => merge_into(existing, new),
                _ => {
                    map.insert(key.to_owned(), Value::Object(new));
                }
            }
        }
        Some(n) => {
            map.insert(key.to_owned(), n);
        }
    }
    Ok(())
}

/// Appends the items not already present.
fn append_unique(existing: &mut Vec<Value>, new: &[Value]) {
    for item in new {
        if !existing.contains(item) {
            existing.push(item.clone());
        }
    }
}

/// Entra's `Remove` with a value list: drops the elements whose `value` is listed (or that
/// equal a listed non-object item).
fn remove_listed(map: &mut Map<String, Value>, key: &str, def: Option<&'static AttrDef>, listed: &Value) {
    let one = [listed.clone()];
    let listed = match listed {
        Value::Array(items) => items.as_slice(),
        _ => one.as_slice(),
    };
    let case_exact = def.and_then(|d| d.sub("value")).is_none_or(|d| d.case_exact);
    let value_of = |v: &Value| match v {
        Value::Object(o) => find_key(o, "value").and_then(|k| o.get(&k).cloned()),
        _ => None,
    };
    let same = |a: &Value, b: &Value| match (a, b) {
        (Value::String(a), Value::String(b)) if !case_exact => a.to_lowercase() == b.to_lowercase(),
        _ => a == b,
    };
    let Some(Value::Array(items)) = map.get_mut(key) else { return };
    items.retain(|item| {
        !listed.iter().any(|l| match (value_of(l), value_of(item)) {
            (Some(want), Some(have)) => same(&want, &have),
            _ => l == item,
        })
    });
    if items.is_empty() {
        map.remove(key);
    }
}

/// `attr.sub` without filter: `name.givenName`, `manager.value`, or `emails.display` (every
/// element).
fn edit_sub(
    map: &mut Map<String, Value>,
    key: &str,
    attr: AttrRef<'_>,
    multi: bool,
    op: OpKind,
    sub: SubRef<'_>,
    value: Option<&Value>,
) -> ScimResult<()> {
    let new = match value.filter(|_| op != OpKind::Remove) {
        None => None,
        Some(v) => normalize_sub(attr, sub, v)?,
    };
    if multi {
        let mut items = match map.remove(key) {
            Some(Value::Array(items)) => items,
            Some(other) => vec![other],
            None => Vec::new(),
        };
        match new {
            None => {
                for item in items.iter_mut() {
                    remove_ci(item, sub.name);
                }
                items.retain(|item| !is_empty_object(item));
            }
            Some(new) if items.is_empty() => {
                let mut element = Map::new();
                element.insert(sub.name.to_owned(), new);
                items.push(Value::Object(element));
            }
            Some(new) => {
                for item in items.iter_mut() {
                    set_ci(item, sub.name, new.clone());
                }
            }
        }
        if !items.is_empty() {
            map.insert(key.to_owned(), Value::Array(items));
        }
        return Ok(());
    }
    match new {
        None => {
            if let Some(item) = map.get_mut(key) {
                remove_ci(item, sub.name);
                if is_empty_object(item) {
                    map.remove(key);
                }
            }
        }
        Some(new) => {
            if let Some(parent) = container_mut(map, key) {
                let sub_key = find_key(parent, sub.name).unwrap_or_else(|| sub.name.to_owned());
                parent.insert(sub_key, new);
            }
        }
    }
    Ok(())
}

/// A sub-attribute value checked against its definition; `None` means "remove it".
fn normalize_sub(attr: AttrRef<'_>, sub: SubRef<'_>, value: &Value) -> ScimResult<Option<Value>> {
    match sub.def {
        Some(def) => schema::normalize_value(def, value, &format!("{}.{}", attr.name, def.name)),
        None => Ok((!value.is_null()).then(|| value.clone())),
    }
}

fn remove_ci(item: &mut Value, name: &str) {
    if let Value::Object(obj) = item {
        if let Some(k) = find_key(obj, name) {
            obj.remove(&k);
        }
    }
}

fn set_ci(item: &mut Value, name: &str, value: Value) {
    if let Value::Object(obj) = item {
        let k = find_key(obj, name).unwrap_or_else(|| name.to_owned());
        obj.insert(k, value);
    }
}

fn is_empty_object(v: &Value) -> bool {
    v.as_object().is_some_and(Map::is_empty)
}

/// `attr[filter]` and `attr[filter].sub`.
fn edit_filtered(
    map: &mut Map<String, Value>,
    key: &str,
    attr: AttrRef<'_>,
    op: OpKind,
    filter: &Filter,
    sub: Option<SubRef<'_>>,
    value: Option<&Value>,
) -> ScimResult<()> {
    let def = attr.def;
    // The filter is relative to one element: `type` in `emails[type eq "work"]` is
    // `emails.type`.
    let case_exact = |p: &AttrPath| def.and_then(|d| d.sub(&p.name)).is_some_and(|s| s.case_exact);
    let mut items = match map.remove(key) {
        Some(Value::Array(items)) => items,
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let hits: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| filter::matches(filter, item, &case_exact))
        .map(|(i, _)| i)
        .collect();
    let any_match = !hits.is_empty();
    match (op, sub) {
        (OpKind::Remove, None) => {
            let mut index = 0;
            items.retain(|_| {
                index += 1;
                !hits.contains(&(index - 1))
            });
        }
        (OpKind::Remove, Some(sub)) => {
            for &i in &hits {
                if let Some(item) = items.get_mut(i) {
                    remove_ci(item, sub.name);
                }
            }
            items.retain(|item| !is_empty_object(item));
        }
        (_, Some(sub)) => {
            let Some(v) = value else { return Err(ScimError::invalid_syntax("missing \"value\"")) };
            match normalize_sub(attr, sub, v)? {
                None => {
                    for &i in &hits {
                        if let Some(item) = items.get_mut(i) {
                            remove_ci(item, sub.name);
                        }
                    }
                    items.retain(|item| !is_empty_object(item));
                }
                Some(new) if !any_match => {
                    let mut element =
                        element_from_filter(filter, def).ok_or_else(|| no_match(attr, filter))?;
                    element.insert(sub.name.to_owned(), new);
                    items.push(Value::Object(element));
                }
                Some(new) => {
                    for &i in &hits {
                        if let Some(item) = items.get_mut(i) {
                            set_ci(item, sub.name, new.clone());
                        }
                    }
                }
            }
        }
        (_, None) => {
            let not_object = || {
                ScimError::invalid_value(format!(
                    "the value for a filtered \"{}\" path must be an object (one element)",
                    attr.name
                ))
            };
            let Some(v) = value.filter(|v| v.is_object()) else { return Err(not_object()) };
            let new = match def {
                Some(d) => schema::normalize_single(d, v, d.name)?,
                None => Some(v.clone()),
            };
            let new = match new {
                Some(Value::Object(new)) => new,
                // `{}` or an all-null object changes nothing.
                None => Map::new(),
                Some(_) => return Err(not_object()),
            };
            if !any_match {
                let mut element = element_from_filter(filter, def).ok_or_else(|| no_match(attr, filter))?;
                merge_into(&mut element, new);
                items.push(Value::Object(element));
            } else {
                for &i in &hits {
                    let Some(Value::Object(item)) = items.get_mut(i) else { continue };
                    if op == OpKind::Replace {
                        *item = element_from_filter(filter, def).unwrap_or_default();
                    }
                    merge_into(item, new.clone());
                }
            }
        }
    }
    if !items.is_empty() {
        map.insert(key.to_owned(), Value::Array(items));
    }
    Ok(())
}

fn no_match(attr: AttrRef<'_>, filter: &Filter) -> ScimError {
    ScimError::no_target(format!(
        "no element of \"{}\" matches [{filter}], and the filter does not say which element to create \
         (only eq conditions joined by and can)",
        attr.name
    ))
}

/// The element a filter of `eq` conditions joined by `and` describes (`type eq "work"` →
/// `{"type":"work"}`); `None` for any other filter.
fn element_from_filter(filter: &Filter, def: Option<&'static AttrDef>) -> Option<Map<String, Value>> {
    fn walk(f: &Filter, def: Option<&'static AttrDef>, out: &mut Map<String, Value>) -> bool {
        match f {
            Filter::Compare(path, CompareOp::Eq, value) if path.urn.is_none() && path.sub.is_none() => {
                let v = match value {
                    CompValue::Str(s) => Value::String(s.clone()),
                    CompValue::Num(n) => Value::Number(n.clone()),
                    CompValue::Bool(b) => Value::Bool(*b),
                    CompValue::Null => return false,
                };
                out.insert(resolve_sub(def, &path.name).name.to_owned(), v);
                true
            }
            Filter::And(a, b) => walk(a, def, out) && walk(b, def, out),
            _ => false,
        }
    }
    let mut out = Map::new();
    walk(filter, def, &mut out).then_some(out)
}

// ---------------------------------------------------------------------------------------
// Group members
// ---------------------------------------------------------------------------------------

/// A change to a group's membership, taken out of a PATCH by [`split_members`]. Ids are as
/// the client sent them; the service checks that they name users.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
    Replace(Vec<String>),
}

/// Splits a group PATCH into the operations on the group's own attributes and the
/// membership changes, both in request order.
///
/// - `add members` with an array of `{"value": id}`, one such object or a bare id string →
///   `Add`; path-less `{"members": […]}` likewise (`replace` → `Replace`).
/// - `remove members` with a value list → `Remove` of those only (Entra's default dialect;
///   not RFC, which would remove all); without a value (or `null`) → `RemoveAll`.
/// - `remove members[value eq "id"]` (also `… or value eq "id2"`) → `Remove`.
/// - `replace members` → `Replace`; with `null` → `RemoveAll`.
/// - `add members` with `null` changes nothing: "add nothing" must not empty a group.
///
/// 400 `invalidValue` for entries without a string `value`; 400 `invalidPath` for member
/// paths that would need the member list loaded (`members[display eq …]`, `members.value`,
/// a filter on add/replace).
pub fn split_members(ops: Vec<PatchOp>) -> ScimResult<(Vec<PatchOp>, Vec<MemberChange>)> {
    let mut rest = Vec::with_capacity(ops.len());
    let mut changes = Vec::new();
    for (i, op) in ops.into_iter().enumerate() {
        split_one(op, &mut rest, &mut changes).map_err(at(i))?;
    }
    Ok((rest, changes))
}

fn is_members_key(key: &str) -> bool {
    let loc = schema::locate(ResourceKind::Group, key);
    loc.container == Container::Root && loc.attr.is_some_and(|a| a.def.is_some_and(|d| d.name == "members"))
}

/// `urn:ietf:params:scim:schemas:core:2.0:Group` itself: an object of root attributes.
fn is_core_key(key: &str) -> bool {
    let loc = schema::locate(ResourceKind::Group, key);
    loc.container == Container::Root && loc.attr.is_none()
}

/// Takes every `members` entry out of an object of attributes, also from inside a
/// `urn:…:core:2.0:Group` object.
fn take_members(attrs: &mut Map<String, Value>) -> Vec<Value> {
    let mut found = Vec::new();
    let keys: Vec<String> = attrs.keys().cloned().collect();
    for key in keys {
        if is_members_key(&key) {
            found.extend(attrs.remove(&key));
        } else if is_core_key(&key) {
            let mut emptied = false;
            if let Some(Value::Object(inner)) = attrs.get_mut(&key) {
                found.extend(take_members(inner));
                emptied = inner.is_empty();
            }
            if emptied {
                attrs.remove(&key);
            }
        }
    }
    found
}

fn split_one(op: PatchOp, rest: &mut Vec<PatchOp>, changes: &mut Vec<MemberChange>) -> ScimResult<()> {
    let whole_resource = match &op.path {
        None => true,
        Some(path) => {
            path.filter.is_none() && path.sub.is_none() && is_core_key(&schema::path_key(&path.attr))
        }
    };
    if whole_resource {
        // `{"op":"add","value":{"members":[…], "displayName":…}}`
        let Some(Value::Object(attrs)) = &op.value else {
            rest.push(op);
            return Ok(());
        };
        let mut attrs = attrs.clone();
        let found = take_members(&mut attrs);
        if found.is_empty() {
            rest.push(op);
            return Ok(());
        }
        for members in &found {
            let change = match (op.op, members) {
                (OpKind::Add, Value::Null) => None,
                (OpKind::Add, v) => Some(MemberChange::Add(schema::member_ids(v)?)),
                (_, Value::Null) => Some(MemberChange::RemoveAll),
                (_, v) => Some(MemberChange::Replace(schema::member_ids(v)?)),
            };
            changes.extend(change);
        }
        if !attrs.is_empty() {
            rest.push(PatchOp { op: op.op, path: op.path, value: Some(Value::Object(attrs)) });
        }
        return Ok(());
    }
    let Some(path) = &op.path else {
        rest.push(op);
        return Ok(());
    };
    let mut whole = path.attr.clone();
    let sub = whole.sub.take();
    if !is_members_key(&schema::path_key(&whole)) {
        rest.push(op);
        return Ok(());
    }
    if sub.is_some() || path.sub.is_some() {
        return Err(ScimError::invalid_path(
            "member changes address whole members: \"members\" or \"members[value eq \\\"<id>\\\"]\"",
        ));
    }
    let change = match (op.op, &path.filter, &op.value) {
        (OpKind::Remove, Some(f), _) => MemberChange::Remove(ids_from_filter(f)?),
        (_, Some(_), _) => {
            return Err(ScimError::invalid_path(
                "a members filter is only meaningful with remove; add or replace members with a value",
            ))
        }
        (OpKind::Remove, None, None | Some(Value::Null)) => MemberChange::RemoveAll,
        (OpKind::Remove, None, Some(v)) => MemberChange::Remove(schema::member_ids(v)?),
        (OpKind::Add, None, None | Some(Value::Null)) => return Ok(()),
        (OpKind::Add, None, Some(v)) => MemberChange::Add(schema::member_ids(v)?),
        (OpKind::Replace, None, None | Some(Value::Null)) => MemberChange::RemoveAll,
        (OpKind::Replace, None, Some(v)) => MemberChange::Replace(schema::member_ids(v)?),
    };
    changes.push(change);
    Ok(())
}

/// Ids of `value eq "id"` conditions joined by `or` (`members[value eq "a" or value eq "b"]`).
fn ids_from_filter(filter: &Filter) -> ScimResult<Vec<String>> {
    fn walk(f: &Filter, out: &mut Vec<String>) -> bool {
        match f {
            Filter::Compare(path, CompareOp::Eq, value)
                if path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case("value") =>
            {
                match value {
                    CompValue::Str(s) if !s.is_empty() => out.push(s.clone()),
                    CompValue::Num(n) => out.push(n.to_string()),
                    _ => return false,
                }
                true
            }
            Filter::Or(a, b) => walk(a, out) && walk(b, out),
            _ => false,
        }
    }
    let mut out = Vec::new();
    if walk(filter, &mut out) {
        Ok(out)
    } else {
        Err(ScimError::invalid_path(format!(
            "members[{filter}]: only value eq \"<id>\" conditions (joined by or) can select members"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ScimType;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};
    use http::StatusCode;
    use serde_json::json;

    const ENT: &str = ENTERPRISE_USER_SCHEMA;
    const USER: ResourceKind = ResourceKind::User;
    const GROUP: ResourceKind = ResourceKind::Group;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn body(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops})
    }

    /// parse → (groups: split members) → apply, as the service does.
    fn run(kind: ResourceKind, before: &Value, request: &Value) -> ScimResult<(Value, Vec<MemberChange>)> {
        let ops = parse_request(request)?;
        let (ops, members) = match kind {
            ResourceKind::Group => split_members(ops)?,
            ResourceKind::User => (ops, Vec::new()),
        };
        let mut resource = obj(before.clone());
        apply(kind, &mut resource, &ops)?;
        Ok((Value::Object(resource), members))
    }

    fn member_json(change: &MemberChange) -> Value {
        match change {
            MemberChange::Add(ids) => json!({ "add": ids }),
            MemberChange::Remove(ids) => json!({ "remove": ids }),
            MemberChange::Replace(ids) => json!({ "replace": ids }),
            MemberChange::RemoveAll => json!("removeAll"),
        }
    }

    fn user() -> Value {
        json!({
            "userName": "bjensen@example.com",
            "displayName": "Babs Jensen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [
                {"type": "work", "value": "bjensen@example.com", "primary": true, "display": "Work"},
                {"type": "home", "value": "babs@jensen.org"}
            ]
        })
    }

    /// `user()` with the given top-level attributes replaced (`null` removes).
    fn user_with(changes: Value) -> Value {
        let mut u = obj(user());
        for (k, v) in obj(changes) {
            if v.is_null() {
                u.remove(&k);
            } else {
                u.insert(k, v);
            }
        }
        Value::Object(u)
    }

    // -----------------------------------------------------------------------------------
    // Fixtures: tests/fixtures/patch/req_<subject>_<expectation>.json
    // -----------------------------------------------------------------------------------

    #[test]
    fn fixtures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/patch");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        assert!(names.len() >= 40, "fixtures missing: {}", names.len());
        for path in names {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            assert!(name.starts_with("req_"), "{name}: fixtures are named req_<subject>_<expectation>.json");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            let fx: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let kind = match fx["kind"].as_str() {
                Some("User") => USER,
                Some("Group") => GROUP,
                other => panic!("{name}: kind {other:?}"),
            };
            let result = run(kind, &fx["before"], &fx["request"]);
            match (result, fx.get("error")) {
                (Ok((after, members)), None) => {
                    assert_eq!(after, fx["after"], "{name}: resulting resource");
                    let members: Vec<Value> = members.iter().map(member_json).collect();
                    let want = fx.get("members").cloned().unwrap_or(json!([]));
                    assert_eq!(Value::Array(members), want, "{name}: member changes");
                }
                (Err(e), Some(want)) => {
                    assert_eq!(json!(e.status.as_u16()), want["status"], "{name}: {e:?}");
                    assert_eq!(json!(e.scim_type.map(|t| t.as_str())), want["scimType"], "{name}: {e:?}");
                }
                (Ok(got), Some(_)) => panic!("{name}: expected an error, got {got:?}"),
                (Err(e), None) => panic!("{name}: unexpected error {e:?}"),
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Table: RFC semantics and Entra quirks, on user()
    // -----------------------------------------------------------------------------------

    #[test]
    fn user_operations() {
        let cases: Vec<(&str, Value, Value)> = vec![
            // --- simple attributes ---
            (
                "add simple",
                json!([{"op": "add", "path": "nickName", "value": "Babs"}]),
                user_with(json!({"nickName": "Babs"})),
            ),
            (
                "replace simple",
                json!([{"op": "replace", "path": "displayName", "value": "B. Jensen"}]),
                user_with(json!({"displayName": "B. Jensen"})),
            ),
            (
                "remove simple",
                json!([{"op": "remove", "path": "displayName"}]),
                user_with(json!({"displayName": null})),
            ),
            ("remove absent is a no-op", json!([{"op": "remove", "path": "title"}]), user()),
            (
                "op in any case",
                json!([{"op": "ADD", "path": "title", "value": "T"}, {"op": "rEpLaCe", "path": "locale", "value": "en"}]),
                user_with(json!({"title": "T", "locale": "en"})),
            ),
            // --- complex ---
            (
                "replace sub-attribute",
                json!([{"op": "replace", "path": "name.givenName", "value": "Babs"}]),
                user_with(json!({"name": {"givenName": "Babs", "familyName": "Jensen"}})),
            ),
            (
                "add sub-attribute",
                json!([{"op": "add", "path": "name.middleName", "value": "Jane"}]),
                user_with(
                    json!({"name": {"givenName": "Barbara", "middleName": "Jane", "familyName": "Jensen"}}),
                ),
            ),
            (
                "replace complex merges sub-attributes (RFC 7644 §3.5.2.3)",
                json!([{"op": "replace", "path": "name", "value": {"GivenName": "Babs", "formatted": "Babs Jensen"}}]),
                user_with(
                    json!({"name": {"givenName": "Babs", "familyName": "Jensen", "formatted": "Babs Jensen"}}),
                ),
            ),
            (
                "remove sub-attribute",
                json!([{"op": "remove", "path": "name.givenName"}]),
                user_with(json!({"name": {"familyName": "Jensen"}})),
            ),
            (
                "removing the last sub-attribute removes the attribute",
                json!([{"op": "remove", "path": "name.givenName"}, {"op": "remove", "path": "name.familyName"}]),
                user_with(json!({"name": null})),
            ),
            ("remove complex", json!([{"op": "remove", "path": "name"}]), user_with(json!({"name": null}))),
            (
                "capitalised names resolve to canonical",
                json!([
                    {"op": "Replace", "path": "name.FamilyName", "value": "J"},
                    {"op": "Replace", "path": "DisplayName", "value": "D"},
                    {"op": "Replace", "path": "Emails[Type eq \"work\"].Value", "value": "w@x"}
                ]),
                user_with(json!({
                    "name": {"givenName": "Barbara", "familyName": "J"},
                    "displayName": "D",
                    "emails": [
                        {"type": "work", "value": "w@x", "primary": true, "display": "Work"},
                        {"type": "home", "value": "babs@jensen.org"}
                    ]
                })),
            ),
            // --- multi-valued ---
            (
                "add appends",
                json!([{"op": "add", "path": "emails", "value": [{"type": "other", "value": "o@x"}]}]),
                user_with(json!({"emails": [
                    {"type": "work", "value": "bjensen@example.com", "primary": true, "display": "Work"},
                    {"type": "home", "value": "babs@jensen.org"},
                    {"type": "other", "value": "o@x"}
                ]})),
            ),
            (
                "add deduplicates identical values",
                json!([{"op": "add", "path": "emails", "value": [{"type": "home", "value": "babs@jensen.org"}, {"Value": "o@x"}, {"value": "o@x"}]}]),
                user_with(json!({"emails": [
                    {"type": "work", "value": "bjensen@example.com", "primary": true, "display": "Work"},
                    {"type": "home", "value": "babs@jensen.org"},
                    {"value": "o@x"}
                ]})),
            ),
            (
                "add a single object to a multi-valued attribute",
                json!([{"op": "add", "path": "phoneNumbers", "value": {"type": "work", "value": "1"}}]),
                user_with(json!({"phoneNumbers": [{"type": "work", "value": "1"}]})),
            ),
            (
                "replace multi-valued without filter replaces the array",
                json!([{"op": "replace", "path": "emails", "value": [{"type": "work", "value": "new@x", "primary": "True"}]}]),
                user_with(json!({"emails": [{"type": "work", "value": "new@x", "primary": true}]})),
            ),
            (
                "replace multi-valued with [] removes it",
                json!([{"op": "replace", "path": "emails", "value": []}]),
                user_with(json!({"emails": null})),
            ),
            (
                "remove with value filter",
                json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
                user_with(json!({"emails": [{"type": "home", "value": "babs@jensen.org"}]})),
            ),
            (
                "value filter compares type case-insensitively (caseExact false)",
                json!([{"op": "remove", "path": "emails[type eq \"WORK\"]"}]),
                user_with(json!({"emails": [{"type": "home", "value": "babs@jensen.org"}]})),
            ),
            (
                "remove sub-attribute under filter",
                json!([{"op": "remove", "path": "emails[type eq \"work\"].display"}]),
                user_with(json!({"emails": [
                    {"type": "work", "value": "bjensen@example.com", "primary": true},
                    {"type": "home", "value": "babs@jensen.org"}
                ]})),
            ),
            (
                "remove with a filter matching nothing is a no-op",
                json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]),
                user(),
            ),
            (
                "removing every element removes the attribute",
                json!([{"op": "remove", "path": "emails[value pr]"}]),
                user_with(json!({"emails": null})),
            ),
            (
                "replace with filter and sub-attribute",
                json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@x"}]),
                user_with(json!({"emails": [
                    {"type": "work", "value": "new@x", "primary": true, "display": "Work"},
                    {"type": "home", "value": "babs@jensen.org"}
                ]})),
            ),
            (
                "add with filter merges into the matched element",
                json!([{"op": "add", "path": "emails[type eq \"home\"]", "value": {"display": "Home", "primary": "false"}}]),
                user_with(json!({"emails": [
                    {"type": "work", "value": "bjensen@example.com", "primary": true, "display": "Work"},
                    {"type": "home", "value": "babs@jensen.org", "display": "Home", "primary": false}
                ]})),
            ),
            (
                "replace with filter replaces the element, keeping the filter's eq conditions",
                json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"value": "w@x"}}]),
                user_with(
                    json!({"emails": [{"type": "work", "value": "w@x"}, {"type": "home", "value": "babs@jensen.org"}]}),
                ),
            ),
            (
                "replace with a filter matching nothing creates the element",
                json!([{"op": "replace", "path": "phoneNumbers[type eq \"mobile\" and primary eq true].value", "value": "+1"}]),
                user_with(json!({"phoneNumbers": [{"type": "mobile", "primary": true, "value": "+1"}]})),
            ),
            (
                "sub-attribute adds with the same filter merge into one element",
                json!([
                    {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Redmond"},
                    {"op": "Add", "path": "addresses[type eq \"work\"].postalCode", "value": "98052"}
                ]),
                user_with(
                    json!({"addresses": [{"type": "work", "locality": "Redmond", "postalCode": "98052"}]}),
                ),
            ),
            (
                "sub-attribute on every element without filter",
                json!([{"op": "replace", "path": "emails.display", "value": "E"}]),
                user_with(json!({"emails": [
                    {"type": "work", "value": "bjensen@example.com", "primary": true, "display": "E"},
                    {"type": "home", "value": "babs@jensen.org", "display": "E"}
                ]})),
            ),
            (
                "remove sub-attribute from every element",
                json!([{"op": "remove", "path": "emails.primary"}]),
                user_with(json!({"emails": [
                    {"type": "work", "value": "bjensen@example.com", "display": "Work"},
                    {"type": "home", "value": "babs@jensen.org"}
                ]})),
            ),
            (
                "remove with a value list removes only those elements (Entra dialect)",
                json!([{"op": "Remove", "path": "emails", "value": [{"value": "BABS@jensen.org"}]}]),
                user_with(
                    json!({"emails": [{"type": "work", "value": "bjensen@example.com", "primary": true, "display": "Work"}]}),
                ),
            ),
            // --- path-less ---
            (
                "path-less keys are attribute paths",
                json!([{"op": "replace", "value": {
                    "displayName": "Bjfe",
                    "name.givenName": "Kkom",
                    "NAME.familyName": "Unua",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq",
                    "emails[type eq \"work\"].value": "w@x"
                }}]),
                user_with(json!({
                    "displayName": "Bjfe",
                    "name": {"givenName": "Kkom", "familyName": "Unua"},
                    ENT: {"employeeNumber": "Aklq"},
                    "emails": [
                        {"type": "work", "value": "w@x", "primary": true, "display": "Work"},
                        {"type": "home", "value": "babs@jensen.org"}
                    ]
                })),
            ),
            (
                "path-less extension object is merged, its keys canonicalised",
                json!([
                    {"op": "add", "value": {ENT: {"department": "Sales"}}},
                    {"op": "add", "value": {ENT: {"Division": "EMEA", "Manager": {"Value": "m1", "displayName": "x"}}}}
                ]),
                user_with(
                    json!({ENT: {"department": "Sales", "division": "EMEA", "manager": {"value": "m1"}}}),
                ),
            ),
            (
                "path-less canonicalises nested names",
                json!([{"op": "add", "value": {"Name": {"GivenName": "B"}, "Active": "False"}}]),
                user_with(json!({"name": {"givenName": "B", "familyName": "Jensen"}, "active": false})),
            ),
            (
                "path-less null removes",
                json!([{"op": "replace", "value": {"displayName": null, "name.givenName": null}}]),
                user_with(json!({"displayName": null, "name": {"familyName": "Jensen"}})),
            ),
            (
                "path-less skips server-managed and readOnly keys",
                json!([{"op": "replace", "value": {"id": "other", "meta": {"version": "W/\"1\""}, "schemas": [USER_SCHEMA], "groups": [], "title": "T"}}]),
                user_with(json!({"title": "T"})),
            ),
            (
                "path-less core URN object",
                json!([{"op": "replace", "value": {USER_SCHEMA: {"displayName": "Core"}}}]),
                user_with(json!({"displayName": "Core"})),
            ),
            // --- URN paths and the enterprise extension ---
            (
                "URN-prefixed path creates the extension object",
                json!([{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"}]),
                user_with(json!({ENT: {"department": "Sales"}})),
            ),
            (
                "URN prefix in any case",
                json!([{"op": "add", "path": "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:Department", "value": "Sales"}]),
                user_with(json!({ENT: {"department": "Sales"}})),
            ),
            (
                "core URN prefix",
                json!([{"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:displayName", "value": "C"}]),
                user_with(json!({"displayName": "C"})),
            ),
            (
                "extension URN path with an object",
                json!([{"op": "replace", "path": ENT, "value": {"costCenter": "4130", "manager": "m2"}}]),
                user_with(json!({ENT: {"costCenter": "4130", "manager": {"value": "m2"}}})),
            ),
            (
                "manager without URN, then manager.value",
                json!([
                    {"op": "Add", "path": "manager", "value": "m1"},
                    {"op": "Replace", "path": "manager.value", "value": "m2"}
                ]),
                user_with(json!({ENT: {"manager": {"value": "m2"}}})),
            ),
            (
                "a bare-string manager replaces the whole manager, $ref included",
                json!([
                    {"op": "Add", "path": "manager", "value": [{"$ref": "https://x/Users/m1", "value": "m1"}]},
                    {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "m2"}
                ]),
                user_with(json!({ENT: {"manager": {"value": "m2"}}})),
            ),
            (
                "removing the last enterprise attribute removes the extension",
                json!([
                    {"op": "Add", "path": "manager", "value": "m1"},
                    {"op": "Remove", "path": "manager"}
                ]),
                user(),
            ),
            (
                "remove the whole extension",
                json!([
                    {"op": "add", "path": "manager", "value": "m1"},
                    {"op": "remove", "path": ENT}
                ]),
                user(),
            ),
            // --- booleans ---
            (
                "active \"False\"",
                json!([{"op": "Replace", "path": "active", "value": "False"}]),
                user_with(json!({"active": false})),
            ),
            (
                "active \"TRUE\"",
                json!([{"op": "Replace", "path": "active", "value": "TRUE"}]),
                user_with(json!({"active": true})),
            ),
            (
                "active Add",
                json!([{"op": "Add", "path": "active", "value": "false"}]),
                user_with(json!({"active": false})),
            ),
            (
                "active bool",
                json!([{"op": "replace", "path": "active", "value": true}]),
                user_with(json!({"active": true})),
            ),
            (
                "primary as a string under a filter",
                json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": "True"}]),
                user_with(json!({"emails": [
                    {"type": "work", "value": "bjensen@example.com", "primary": true, "display": "Work"},
                    {"type": "home", "value": "babs@jensen.org", "primary": true}
                ]})),
            ),
            // --- null values ---
            (
                "null replace removes",
                json!([{"op": "replace", "path": "displayName", "value": null}]),
                user_with(json!({"displayName": null})),
            ),
            (
                "null add removes",
                json!([{"op": "add", "path": "emails[type eq \"home\"]", "value": null}]),
                user_with(json!({"emails": [
                    {"type": "work", "value": "bjensen@example.com", "primary": true, "display": "Work"}
                ]})),
            ),
            // --- unknown attributes and custom extensions ---
            (
                "unknown attribute stored as sent",
                json!([{"op": "add", "path": "favouriteColour", "value": {"Hue": "blue"}}]),
                user_with(json!({"favouriteColour": {"Hue": "blue"}})),
            ),
            (
                "unknown attribute matched ignoring case",
                json!([
                    {"op": "add", "path": "favouriteColour", "value": "blue"},
                    {"op": "replace", "path": "FAVOURITECOLOUR", "value": "red"}
                ]),
                user_with(json!({"favouriteColour": "red"})),
            ),
            (
                "custom extension attribute goes into its extension object",
                json!([
                    {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:tag", "value": "t1"},
                    {"op": "add", "value": {"urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:level": 3}}
                ]),
                user_with(
                    json!({"urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User": {"tag": "t1", "level": 3}}),
                ),
            ),
            (
                "password is accepted and never stored",
                json!([{"op": "replace", "path": "password", "value": "t1meMa$heen"}]),
                user(),
            ),
            (
                "all in one request, in order",
                json!([
                    {"op": "remove", "path": "emails"},
                    {"op": "add", "path": "emails[type eq \"work\"].value", "value": "a@x"},
                    {"op": "replace", "path": "userName", "value": "a@x"}
                ]),
                user_with(json!({"userName": "a@x", "emails": [{"type": "work", "value": "a@x"}]})),
            ),
        ];
        for (name, ops, want) in cases {
            match run(USER, &user(), &body(ops)) {
                Ok((got, members)) => {
                    assert_eq!(got, want, "{name}");
                    assert!(members.is_empty(), "{name}");
                }
                Err(e) => panic!("{name}: {e:?}"),
            }
        }
    }

    #[test]
    fn never_stores_a_dotted_key() {
        let (got, _) =
            run(USER, &user(), &body(json!([{"op": "replace", "value": {"name.givenName": "K"}}])))
                .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(got.get("name.givenName").is_none());
        assert_eq!(got["name"]["givenName"], "K");
    }

    // -----------------------------------------------------------------------------------
    // Errors
    // -----------------------------------------------------------------------------------

    #[test]
    fn errors() {
        let cases: Vec<(&str, Value, ScimType, &str)> = vec![
            ("not an object", json!([]), ScimType::InvalidSyntax, "a PATCH body must be a JSON object"),
            (
                "no Operations",
                json!({"schemas": [PATCH_OP_SCHEMA]}),
                ScimType::InvalidSyntax,
                "\"Operations\"",
            ),
            (
                "Operations not an array",
                json!({"Operations": {}}),
                ScimType::InvalidSyntax,
                "\"Operations\" must be an array",
            ),
            ("zero operations", body(json!([])), ScimType::InvalidSyntax, "no operation"),
            (
                "schemas without PatchOp",
                json!({"schemas": [USER_SCHEMA], "Operations": [{"op": "add", "path": "title", "value": "x"}]}),
                ScimType::InvalidSyntax,
                PATCH_OP_SCHEMA,
            ),
            ("operation not an object", body(json!(["add"])), ScimType::InvalidSyntax, "Operations[0]: "),
            (
                "bad op",
                body(json!([{"op": "update", "path": "title", "value": "x"}])),
                ScimType::InvalidSyntax,
                "unknown op \"update\"",
            ),
            ("missing op", body(json!([{"path": "title", "value": "x"}])), ScimType::InvalidSyntax, "\"op\""),
            (
                "bad path",
                body(json!([{"op": "add", "path": "emails[type eq]", "value": "x"}])),
                ScimType::InvalidPath,
                "at offset",
            ),
            (
                "path not a string",
                body(json!([{"op": "add", "path": 3, "value": "x"}])),
                ScimType::InvalidPath,
                "\"path\" must be a string",
            ),
            (
                "missing value",
                body(json!([{"op": "replace", "path": "title"}])),
                ScimType::InvalidSyntax,
                "needs a \"value\"",
            ),
            ("remove without path", body(json!([{"op": "remove"}])), ScimType::NoTarget, "needs a \"path\""),
            (
                "path-less value not an object",
                body(json!([{"op": "add", "value": "x"}])),
                ScimType::InvalidValue,
                "must be an object",
            ),
            (
                "path-less null",
                body(json!([{"op": "replace", "value": null}])),
                ScimType::InvalidValue,
                "must be an object",
            ),
            (
                "second op reported with its index",
                body(json!([{"op": "add", "path": "title", "value": "x"}, {"op": "nope"}])),
                ScimType::InvalidSyntax,
                "Operations[1]: ",
            ),
            (
                "id is readOnly",
                body(json!([{"op": "replace", "path": "id", "value": "x"}])),
                ScimType::Mutability,
                "\"id\" is readOnly",
            ),
            (
                "meta is readOnly",
                body(json!([{"op": "replace", "path": "meta.lastModified", "value": "x"}])),
                ScimType::Mutability,
                "\"meta\" is readOnly",
            ),
            (
                "groups is readOnly",
                body(json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}])),
                ScimType::Mutability,
                "\"groups\" is readOnly",
            ),
            (
                "manager.displayName is readOnly",
                body(json!([{"op": "add", "path": "manager.displayName", "value": "x"}])),
                ScimType::Mutability,
                "readOnly",
            ),
            (
                "schemas is server-managed",
                body(json!([{"op": "replace", "path": "schemas", "value": []}])),
                ScimType::Mutability,
                "schemas",
            ),
            (
                "remove userName",
                body(json!([{"op": "remove", "path": "userName"}])),
                ScimType::Mutability,
                "\"userName\" is required",
            ),
            (
                "null userName",
                body(json!([{"op": "replace", "path": "userName", "value": null}])),
                ScimType::Mutability,
                "\"userName\" is required",
            ),
            (
                "empty userName",
                body(json!([{"op": "replace", "path": "userName", "value": ""}])),
                ScimType::InvalidValue,
                "userName is required",
            ),
            (
                "userName not a string",
                body(json!([{"op": "replace", "path": "userName", "value": 7}])),
                ScimType::InvalidValue,
                "\"userName\" must be a string",
            ),
            (
                "active not a boolean",
                body(json!([{"op": "replace", "path": "active", "value": "maybe"}])),
                ScimType::InvalidValue,
                "\"active\" must be a boolean",
            ),
            (
                "emails not objects",
                body(json!([{"op": "add", "path": "emails", "value": ["a@b"]}])),
                ScimType::InvalidValue,
                "\"emails\" must be an array of objects",
            ),
            (
                "name not an object",
                body(json!([{"op": "replace", "path": "name", "value": "Babs"}])),
                ScimType::InvalidValue,
                "\"name\" must be an object",
            ),
            (
                "sub-attribute type",
                body(
                    json!([{"op": "replace", "path": "emails[type eq \"work\"].primary", "value": "often"}]),
                ),
                ScimType::InvalidValue,
                "\"emails.primary\" must be a boolean",
            ),
            (
                "filter on a single-valued attribute",
                body(json!([{"op": "replace", "path": "name[givenName eq \"x\"].familyName", "value": "y"}])),
                ScimType::InvalidPath,
                "not multi-valued",
            ),
            (
                "filter that cannot create",
                body(json!([{"op": "replace", "path": "emails[value co \"nobody\"].display", "value": "y"}])),
                ScimType::NoTarget,
                "emails",
            ),
            (
                "filtered value not an object",
                body(json!([{"op": "add", "path": "emails[type eq \"x\"]", "value": "y"}])),
                ScimType::InvalidValue,
                "must be an object",
            ),
            (
                "extension value not an object",
                body(json!([{"op": "add", "path": ENT, "value": "y"}])),
                ScimType::InvalidValue,
                "must be an object",
            ),
            (
                "remove core schema",
                body(json!([{"op": "remove", "path": USER_SCHEMA}])),
                ScimType::Mutability,
                "core schema",
            ),
        ];
        for (name, request, scim_type, detail) in cases {
            let before = obj(user());
            let mut resource = before.clone();
            let result = parse_request(&request).and_then(|ops| apply(USER, &mut resource, &ops));
            match result {
                Ok(()) => panic!("{name}: expected {scim_type:?}, got {resource:?}"),
                Err(e) => {
                    assert_eq!(e.status, StatusCode::BAD_REQUEST, "{name}");
                    assert_eq!(e.scim_type, Some(scim_type), "{name}: {}", e.detail);
                    assert!(e.detail.contains(detail), "{name}: {:?} does not contain {detail:?}", e.detail);
                }
            }
            assert_eq!(resource, before, "{name}: the resource must be unchanged");
        }
    }

    #[test]
    fn all_or_nothing() {
        let mut resource = obj(user());
        let ops = parse_request(&body(json!([
            {"op": "replace", "path": "displayName", "value": "changed"},
            {"op": "replace", "path": "active", "value": "maybe"}
        ])))
        .unwrap_or_else(|e| panic!("{e:?}"));
        let err = apply(USER, &mut resource, &ops).err();
        assert_eq!(err.map(|e| e.scim_type), Some(Some(ScimType::InvalidValue)));
        assert_eq!(Value::Object(resource), user());
    }

    #[test]
    fn parse_request_shapes() {
        // Tolerated: no schemas, Operations in any case, path "" as no path.
        let ops = parse_request(&json!({"operations": [
            {"Op": "Add", "Path": "", "Value": {"title": "x"}},
            {"op": "Remove", "path": "emails[type eq \"work\"].value"}
        ]}))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0], PatchOp { op: OpKind::Add, path: None, value: Some(json!({"title": "x"})) });
        assert_eq!(ops[1].op, OpKind::Remove);
        assert_eq!(ops[1].value, None);
        let path = ops[1].path.as_ref().unwrap_or_else(|| panic!("path"));
        assert_eq!(path.attr.name, "emails");
        assert_eq!(path.sub.as_deref(), Some("value"));
        // An explicit null is kept (it means remove), distinct from a missing value.
        let ops = parse_request(&body(json!([{"op": "replace", "path": "title", "value": null}])))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(ops[0].value, Some(Value::Null));
    }

    #[test]
    fn bad_path_error_carries_parser_offset() {
        let err =
            parse_request(&body(json!([{"op": "add", "path": "emails[type eq \"work\"", "value": "x"}])))
                .err()
                .unwrap_or_else(|| panic!("expected an error"));
        assert_eq!(err.scim_type, Some(ScimType::InvalidPath));
        assert!(
            err.detail.starts_with("Operations[0]: invalid path \"emails[type eq \\\"work\\\"\": "),
            "{}",
            err.detail
        );
        assert!(err.detail.contains("(at offset "), "{}", err.detail);
    }

    // -----------------------------------------------------------------------------------
    // Groups and members
    // -----------------------------------------------------------------------------------

    fn group() -> Value {
        json!({"displayName": "Sales", "externalId": "e1"})
    }

    #[test]
    fn member_changes() {
        let cases: Vec<(&str, Value, Value, Vec<MemberChange>)> = vec![
            (
                "add list",
                json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u1"}, {"value": "u2"}]}]),
                group(),
                vec![MemberChange::Add(vec!["u1".into(), "u2".into()])],
            ),
            (
                "add one object",
                json!([{"op": "add", "path": "members", "value": {"value": "u1"}}]),
                group(),
                vec![MemberChange::Add(vec!["u1".into()])],
            ),
            (
                "add bare string",
                json!([{"op": "add", "path": "members", "value": "string id 1"}]),
                group(),
                vec![MemberChange::Add(vec!["string id 1".into()])],
            ),
            (
                "add null changes nothing",
                json!([{"op": "add", "path": "members", "value": null}]),
                group(),
                vec![],
            ),
            (
                "remove listed only (Entra default dialect)",
                json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "u1"}]}]),
                group(),
                vec![MemberChange::Remove(vec!["u1".into()])],
            ),
            (
                "remove with an empty list removes nobody",
                json!([{"op": "Remove", "path": "members", "value": []}]),
                group(),
                vec![MemberChange::Remove(vec![])],
            ),
            (
                "remove all",
                json!([{"op": "remove", "path": "members"}]),
                group(),
                vec![MemberChange::RemoveAll],
            ),
            (
                "remove all with null value",
                json!([{"op": "remove", "path": "members", "value": null}]),
                group(),
                vec![MemberChange::RemoveAll],
            ),
            (
                "remove by filter",
                json!([{"op": "remove", "path": "members[value eq \"u1\"]"}]),
                group(),
                vec![MemberChange::Remove(vec!["u1".into()])],
            ),
            (
                "remove by or-filter",
                json!([{"op": "remove", "path": "Members[Value eq \"u1\" or value eq \"u2\"]"}]),
                group(),
                vec![MemberChange::Remove(vec!["u1".into(), "u2".into()])],
            ),
            (
                "replace",
                json!([{"op": "Replace", "path": "members", "value": [{"value": "u3"}]}]),
                group(),
                vec![MemberChange::Replace(vec!["u3".into()])],
            ),
            (
                "replace null",
                json!([{"op": "replace", "path": "members", "value": null}]),
                group(),
                vec![MemberChange::RemoveAll],
            ),
            (
                "URN-prefixed members path",
                json!([{"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:members", "value": [{"value": "u1"}]}]),
                group(),
                vec![MemberChange::Add(vec!["u1".into()])],
            ),
            (
                "path-less members",
                json!([{"op": "add", "value": {"members": [{"value": "u1"}]}}]),
                group(),
                vec![MemberChange::Add(vec!["u1".into()])],
            ),
            (
                "path-less rename and members together, in order",
                json!([
                    {"op": "replace", "value": {"displayName": "Sales EMEA", "Members": [{"value": "u9"}]}},
                    {"op": "remove", "path": "members[value eq \"u9\"]"},
                    {"op": "Replace", "path": "displayName", "value": "Sales EU"}
                ]),
                json!({"displayName": "Sales EU", "externalId": "e1"}),
                vec![MemberChange::Replace(vec!["u9".into()]), MemberChange::Remove(vec!["u9".into()])],
            ),
            (
                "members inside the core schema object",
                json!([
                    {"op": "replace", "value": {GROUP_SCHEMA: {"displayName": "G2", "members": [{"value": "u1"}]}}},
                    {"op": "add", "path": GROUP_SCHEMA, "value": {"members": [{"value": "u2"}]}}
                ]),
                json!({"displayName": "G2", "externalId": "e1"}),
                vec![MemberChange::Replace(vec!["u1".into()]), MemberChange::Add(vec!["u2".into()])],
            ),
            (
                "group rename, path-less, lower-case",
                json!([{"op": "replace", "value": {"displayName": "Renamed"}}]),
                json!({"displayName": "Renamed", "externalId": "e1"}),
                vec![],
            ),
            (
                "member display and $ref are not needed",
                json!([{"op": "add", "path": "members", "value": [{"display": "Babs", "$ref": "https://x/Users/u1", "value": "u1", "type": "User"}]}]),
                group(),
                vec![MemberChange::Add(vec!["u1".into()])],
            ),
        ];
        for (name, ops, want_group, want_members) in cases {
            match run(GROUP, &group(), &body(ops)) {
                Ok((got, members)) => {
                    assert_eq!(got, want_group, "{name}");
                    assert_eq!(members, want_members, "{name}");
                }
                Err(e) => panic!("{name}: {e:?}"),
            }
        }
    }

    #[test]
    fn member_errors() {
        let cases: Vec<(&str, Value, ScimType)> = vec![
            (
                "entry without value",
                json!([{"op": "add", "path": "members", "value": [{"display": "x"}]}]),
                ScimType::InvalidValue,
            ),
            (
                "numeric value",
                json!([{"op": "add", "path": "members", "value": [{"value": 5}]}]),
                ScimType::InvalidValue,
            ),
            (
                "empty value",
                json!([{"op": "add", "path": "members", "value": [{"value": ""}]}]),
                ScimType::InvalidValue,
            ),
            ("number entry", json!([{"op": "add", "path": "members", "value": [5]}]), ScimType::InvalidValue),
            (
                "path-less bad entry",
                json!([{"op": "add", "value": {"members": [{"ref": "x"}]}}]),
                ScimType::InvalidValue,
            ),
            (
                "filter not on value",
                json!([{"op": "remove", "path": "members[display eq \"Babs\"]"}]),
                ScimType::InvalidPath,
            ),
            (
                "filter with and",
                json!([{"op": "remove", "path": "members[value eq \"a\" and type eq \"User\"]"}]),
                ScimType::InvalidPath,
            ),
            (
                "filter on add",
                json!([{"op": "add", "path": "members[value eq \"a\"]", "value": {"value": "a"}}]),
                ScimType::InvalidPath,
            ),
            ("sub-attribute path", json!([{"op": "remove", "path": "members.value"}]), ScimType::InvalidPath),
            (
                "sub-attribute after filter",
                json!([{"op": "remove", "path": "members[value eq \"a\"].display"}]),
                ScimType::InvalidPath,
            ),
            ("remove displayName", json!([{"op": "remove", "path": "displayName"}]), ScimType::Mutability),
        ];
        for (name, ops, scim_type) in cases {
            match run(GROUP, &group(), &body(ops)) {
                Ok(got) => panic!("{name}: expected {scim_type:?}, got {got:?}"),
                Err(e) => assert_eq!(e.scim_type, Some(scim_type), "{name}: {}", e.detail),
            }
        }
    }

    #[test]
    fn members_reaching_apply_are_a_server_error() {
        let ops = parse_request(&body(json!([{"op": "add", "path": "members", "value": [{"value": "u1"}]}])))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let mut resource = obj(group());
        let err = apply(GROUP, &mut resource, &ops).err().unwrap_or_else(|| panic!("expected an error"));
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(Value::Object(resource), group());
        // For users `members` is just an unknown attribute.
        let mut u = obj(user());
        assert!(apply(USER, &mut u, &ops).is_ok());
    }

    #[test]
    fn split_members_leaves_user_ops_alone() {
        let ops = parse_request(&body(json!([
            {"op": "add", "path": "displayName", "value": "x"},
            {"op": "add", "value": {"externalId": "y"}}
        ])))
        .unwrap_or_else(|e| panic!("{e:?}"));
        let (rest, changes) = split_members(ops.clone()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(rest, ops);
        assert!(changes.is_empty());
    }

    #[test]
    fn result_is_what_schemas_for_sees() {
        let (got, _) = run(
            USER,
            &user(),
            &body(json!([{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "m"}])),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let attrs = obj(got);
        assert_eq!(schema::schemas_for(USER, &attrs), vec![USER_SCHEMA, ENT]);
    }
}
