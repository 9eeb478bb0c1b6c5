//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5) applied to a rendered resource.
//! `id` and `schemas` are always returned.

use serde_json::{Map, Value};

/// One requested attribute: `[urn:]name[.sub]` (a value filter such as
/// `emails[type eq "work"]` selects the whole attribute).
struct Wanted {
    urn: Option<String>,
    name: String,
    sub: Option<String>,
}

fn parse_list(list: &str) -> Vec<Wanted> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let s = s.split('[').next().unwrap_or(s);
            let (urn, rest) = match s.rfind(':') {
                Some(i) if s.to_ascii_lowercase().starts_with("urn:") => {
                    (Some(s.get(..i).unwrap_or_default().to_owned()), s.get(i + 1..).unwrap_or_default())
                }
                _ => (None, s),
            };
            let (name, sub) = match rest.split_once('.') {
                Some((n, sub)) => (n.to_owned(), Some(sub.to_owned())),
                None => (rest.to_owned(), None),
            };
            Wanted { urn, name, sub }
        })
        .collect()
}

const ALWAYS: [&str; 2] = ["id", "schemas"];

fn find_key<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).map(String::as_str)
}

/// Whether `attributes`/`excludedAttributes` let `name` through (for attributes that are
/// computed separately, like group members).
pub fn wants(attributes: Option<&str>, excluded: Option<&str>, name: &str) -> bool {
    if let Some(a) = attributes.filter(|a| !a.trim().is_empty()) {
        return parse_list(a).iter().any(|w| w.name.eq_ignore_ascii_case(name) && w.urn.is_none());
    }
    if let Some(e) = excluded {
        return !parse_list(e)
            .iter()
            .any(|w| w.name.eq_ignore_ascii_case(name) && w.urn.is_none() && w.sub.is_none());
    }
    true
}

pub fn project(resource: &mut Value, attributes: Option<&str>, excluded: Option<&str>) {
    let Value::Object(obj) = resource else { return };
    if let Some(a) = attributes.filter(|a| !a.trim().is_empty()) {
        let wanted = parse_list(a);
        let mut out = Map::new();
        for k in ALWAYS {
            if let Some(v) = obj.remove(k) {
                out.insert(k.to_owned(), v);
            }
        }
        for w in &wanted {
            let (container, name) = match &w.urn {
                // `urn:…:User:userName` names a core attribute; an extension URN names a key
                // inside the extension object.
                Some(urn) if find_key(obj, urn).is_some() => (find_key(obj, urn).map(str::to_owned), &w.name),
                _ => (None, &w.name),
            };
            match container {
                Some(urn) => {
                    let Some(Value::Object(ext)) = obj.get(&urn) else { continue };
                    let Some(k) = find_key(ext, name).map(str::to_owned) else { continue };
                    let Some(v) = ext.get(&k).cloned() else { continue };
                    let entry = out.entry(urn).or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(e) = entry {
                        e.insert(k, v);
                    }
                }
                None => {
                    let Some(k) = find_key(obj, name).map(str::to_owned) else { continue };
                    let Some(v) = obj.get(&k).cloned() else { continue };
                    let v = match &w.sub {
                        Some(sub) => keep_sub(v, sub, out.get(&k)),
                        None => v,
                    };
                    out.insert(k, v);
                }
            }
        }
        *obj = out;
        return;
    }
    if let Some(e) = excluded {
        for w in parse_list(e) {
            let target = match &w.urn {
                Some(urn) => match find_key(obj, urn).map(str::to_owned) {
                    Some(k) => match obj.get_mut(&k) {
                        Some(Value::Object(ext)) => ext,
                        _ => continue,
                    },
                    None => obj,
                },
                None => obj,
            };
            let Some(k) = find_key(target, &w.name).map(str::to_owned) else { continue };
            if ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(&k)) {
                continue;
            }
            match &w.sub {
                None => {
                    target.remove(&k);
                }
                Some(sub) => match target.get_mut(&k) {
                    Some(Value::Object(o)) => remove_key(o, sub),
                    Some(Value::Array(items)) => {
                        for i in items {
                            if let Value::Object(o) = i {
                                remove_key(o, sub);
                            }
                        }
                    }
                    _ => {}
                },
            }
        }
    }
}

fn remove_key(o: &mut Map<String, Value>, name: &str) {
    if let Some(k) = find_key(o, name).map(str::to_owned) {
        o.remove(&k);
    }
}

/// Keeps only `sub` of a complex (or multi-valued complex) value, merged with what an earlier
/// `attributes` entry already kept of it.
fn keep_sub(v: Value, sub: &str, already: Option<&Value>) -> Value {
    let pick = |o: &Map<String, Value>, prev: Option<&Value>| {
        let mut m = match prev {
            Some(Value::Object(p)) => p.clone(),
            _ => Map::new(),
        };
        if let Some(k) = find_key(o, sub) {
            if let Some(x) = o.get(k) {
                m.insert(k.to_owned(), x.clone());
            }
        }
        Value::Object(m)
    };
    match v {
        Value::Object(o) => pick(&o, already),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, it)| match it {
                    Value::Object(o) => pick(o, already.and_then(|a| a.get(i))),
                    other => other.clone(),
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({"schemas":["s"],"id":"1","userName":"a","emails":[{"value":"x","type":"work"}],
               "name":{"givenName":"g","familyName":"f"},"meta":{"version":"W/\"1\""},
               "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"d","employeeNumber":"7"}})
    }

    #[test]
    fn attributes_keep_only_what_is_asked_plus_id() {
        let mut u = user();
        project(&mut u, Some("userName,name.givenName,emails[type eq \"work\"]"), None);
        assert_eq!(
            u,
            json!({"schemas":["s"],"id":"1","userName":"a","name":{"givenName":"g"},"emails":[{"value":"x","type":"work"}]})
        );
        let mut u = user();
        project(&mut u, Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"), None);
        assert_eq!(
            u,
            json!({"schemas":["s"],"id":"1","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"d"}})
        );
    }

    #[test]
    fn excluded_attributes_drop_but_never_id() {
        let mut u = user();
        project(&mut u, None, Some("emails,id,name.familyName,Meta"));
        assert_eq!(u.get("emails"), None);
        assert_eq!(u.get("meta"), None);
        assert_eq!(u.get("id"), Some(&json!("1")));
        assert_eq!(u.get("name"), Some(&json!({"givenName":"g"})));
        assert!(wants(None, Some("members"), "userName"));
        assert!(!wants(None, Some("Members"), "members"));
        assert!(!wants(Some("displayName"), None, "members"));
        assert!(wants(Some("displayName,members"), None, "members"));
    }
}
