//! The one table of SCIM attribute definitions (RFC 7643 §4, §7, §8.7.1) and everything
//! derived from it: attribute-name resolution, `caseExact` for the filter evaluator, the
//! normalisation of POST/PUT bodies, the `schemas` array of responses, and the discovery
//! documents (`/Schemas`, `/ResourceTypes`).
//!
//! # What the stored attribute map looks like
//!
//! [`normalize`] turns a client body into the map the service stores and [`crate::scim::patch`]
//! edits. Its invariants, relied on by both:
//! - no `id`, `meta` or `schemas` (server-managed);
//! - known attribute names in the schema's spelling (`"Department"` → `"department"`),
//!   at every level; unknown attributes exactly as sent;
//! - no null values, no empty arrays or objects for known attributes (RFC 7643 §2.5 treats
//!   null, empty and unassigned as the same state, so "absent" is the one representation);
//! - enterprise attributes inside one object keyed by [`ENTERPRISE_USER_SCHEMA`]; other
//!   extension objects (`urn:…:CustomExtensionName:2.0:User`, Entra's
//!   `http://schemas.microsoft.com/…/ADSCIM/2.0/Group`) under the key the client used;
//! - no readOnly attributes (`groups` on a User) and no `password` (see [`normalize`]).

use serde_json::{json, Map, Value};

use crate::config::UniqueAttributes;
use crate::error::{ScimError, ScimResult};
use crate::scim::filter::AttrPath;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

// ---------------------------------------------------------------------------------------
// Types of the table
// ---------------------------------------------------------------------------------------

/// RFC 7643 §2.3 data types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Reference,
    Binary,
    Complex,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Reference => "reference",
            AttrType::Binary => "binary",
            AttrType::Complex => "complex",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute definition (RFC 7643 §7 "attributes").
#[derive(Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub description: &'static str,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub_attributes: &'static [AttrDef],
}

// Builders, so the table below reads like RFC 7643 §8.7.1 without repeating every default.
impl AttrDef {
    const fn new(name: &'static str, ty: AttrType, description: &'static str) -> Self {
        AttrDef {
            name,
            ty,
            multi_valued: false,
            description,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: &[],
            reference_types: &[],
            sub_attributes: &[],
        }
    }
    const fn multi(self) -> Self {
        AttrDef { multi_valued: true, ..self }
    }
    const fn required(self) -> Self {
        AttrDef { required: true, ..self }
    }
    const fn exact(self) -> Self {
        AttrDef { case_exact: true, ..self }
    }
    const fn mutability(self, mutability: Mutability) -> Self {
        AttrDef { mutability, ..self }
    }
    const fn read_only(self) -> Self {
        self.mutability(Mutability::ReadOnly)
    }
    const fn returned(self, returned: Returned) -> Self {
        AttrDef { returned, ..self }
    }
    const fn unique(self, uniqueness: Uniqueness) -> Self {
        AttrDef { uniqueness, ..self }
    }
    const fn canonical(self, canonical_values: &'static [&'static str]) -> Self {
        AttrDef { canonical_values, ..self }
    }
    const fn refs(self, reference_types: &'static [&'static str]) -> Self {
        AttrDef { reference_types, ..self }
    }

    /// The definition of sub-attribute `name` (ASCII case-insensitive).
    pub fn sub(&self, name: &str) -> Option<&'static AttrDef> {
        find(self.sub_attributes, name)
    }

    /// A complex attribute whose sub-attributes describe one referenced thing through a
    /// `value` (manager, members, emails…). Such a single-valued attribute accepts a bare
    /// string as its `value` (Entra sends `manager` that way).
    pub(crate) fn has_value_sub(&self) -> bool {
        self.ty == AttrType::Complex && self.sub("value").is_some()
    }
}

const fn string(name: &'static str, description: &'static str) -> AttrDef {
    AttrDef::new(name, AttrType::String, description)
}
const fn boolean(name: &'static str, description: &'static str) -> AttrDef {
    AttrDef::new(name, AttrType::Boolean, description)
}
const fn date_time(name: &'static str, description: &'static str) -> AttrDef {
    AttrDef::new(name, AttrType::DateTime, description)
}
const fn reference(name: &'static str, types: &'static [&'static str], description: &'static str) -> AttrDef {
    AttrDef::new(name, AttrType::Reference, description).refs(types).exact()
}
const fn complex(name: &'static str, subs: &'static [AttrDef], description: &'static str) -> AttrDef {
    AttrDef { sub_attributes: subs, ..AttrDef::new(name, AttrType::Complex, description) }
}

/// The `display` / `type` / `primary` trio that RFC 7643 gives most multi-valued attributes,
/// after their `value`.
const fn plural(value: AttrDef, types: &'static [&'static str]) -> [AttrDef; 4] {
    [
        value,
        string("display", "A human-readable name, primarily used for display purposes."),
        string("type", "A label indicating the attribute's function.").canonical(types),
        boolean(
            "primary",
            "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.",
        ),
    ]
}

/// One schema (RFC 7643 §7).
#[derive(Debug)]
pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [AttrDef],
}

// ---------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------

/// RFC 7643 §3.1 common attributes. Not listed in `/Schemas` (RFC 7643 §8.7.1 leaves them
/// out too), but resolved like any other attribute (for `caseExact` and mutability checks).
static COMMON: [AttrDef; 3] = [
    string("id", "Unique identifier for the SCIM resource as defined by the service provider.")
        .exact()
        .read_only()
        .returned(Returned::Always)
        .unique(Uniqueness::Server),
    string("externalId", "Identifier for the resource as defined by the provisioning client.").exact(),
    complex("meta", &META_SUBS, "Resource metadata.").read_only(),
];

static META_SUBS: [AttrDef; 5] = [
    string("resourceType", "The name of the resource type of the resource.").exact().read_only(),
    date_time("created", "The date and time the resource was added to the service provider.").read_only(),
    date_time("lastModified", "The most recent date and time the resource was modified.").read_only(),
    reference("location", &["uri"], "The URI of the resource being returned.").read_only(),
    string("version", "The version (ETag) of the resource being returned.").exact().read_only(),
];

static NAME_SUBS: [AttrDef; 6] = [
    string("formatted", "The full name, including all middle names, titles, and suffixes as appropriate."),
    string("familyName", "The family name of the User, or last name."),
    string("givenName", "The given name of the User, or first name."),
    string("middleName", "The middle name(s) of the User."),
    string("honorificPrefix", "The honorific prefix(es) of the User, or title."),
    string("honorificSuffix", "The honorific suffix(es) of the User, or suffix."),
];

static EMAIL_SUBS: [AttrDef; 4] =
    plural(string("value", "Email address for the User."), &["work", "home", "other"]);
static PHONE_SUBS: [AttrDef; 4] = plural(
    string("value", "Phone number of the User."),
    &["work", "home", "mobile", "fax", "pager", "other"],
);
static IM_SUBS: [AttrDef; 4] = plural(
    string("value", "Instant messaging address for the User."),
    &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
);
static PHOTO_SUBS: [AttrDef; 4] =
    plural(reference("value", &["external"], "URL of a photo of the User."), &["photo", "thumbnail"]);
static ENTITLEMENT_SUBS: [AttrDef; 4] = plural(string("value", "The value of an entitlement."), &[]);
static ROLE_SUBS: [AttrDef; 4] = plural(string("value", "The value of a role."), &[]);
static X509_SUBS: [AttrDef; 4] =
    plural(AttrDef::new("value", AttrType::Binary, "The value of an X.509 certificate."), &[]);

static ADDRESS_SUBS: [AttrDef; 8] = [
    string("formatted", "The full mailing address, formatted for display or use with a mailing label."),
    string("streetAddress", "The full street address component."),
    string("locality", "The city or locality component."),
    string("region", "The state or region component."),
    string("postalCode", "The zip code or postal code component."),
    string("country", "The country name component."),
    string("type", "A label indicating the attribute's function.").canonical(&["work", "home", "other"]),
    boolean("primary", "A Boolean value indicating the 'primary' or preferred address."),
];

static USER_GROUP_SUBS: [AttrDef; 4] = [
    string("value", "The identifier of the User's group.").exact().read_only(),
    reference("$ref", &["User", "Group"], "The URI of the corresponding 'Group' resource.").read_only(),
    string("display", "A human-readable name, primarily used for display purposes.").read_only(),
    string("type", "A label indicating the attribute's function.")
        .canonical(&["direct", "indirect"])
        .read_only(),
];

static USER_ATTRS: [AttrDef; 21] = [
    string(
        "userName",
        "Unique identifier for the User, typically used by the user to directly authenticate.",
    )
    .required()
    .unique(Uniqueness::Server),
    complex("name", &NAME_SUBS, "The components of the user's real name."),
    string("displayName", "The name of the User, suitable for display to end-users."),
    string("nickName", "The casual way to address the user in real life."),
    reference(
        "profileUrl",
        &["external"],
        "A fully qualified URL pointing to a page representing the User's online profile.",
    ),
    string("title", "The user's title, such as \"Vice President\"."),
    string("userType", "Used to identify the relationship between the organization and the user."),
    string("preferredLanguage", "Indicates the User's preferred written or spoken language."),
    string("locale", "Used to indicate the User's default location for purposes of localizing items."),
    string("timezone", "The User's time zone in the 'Olson' time zone database format."),
    boolean("active", "A Boolean value indicating the User's administrative status."),
    string("password", "The User's cleartext password. Accepted and discarded: scim-edge never stores it.")
        .mutability(Mutability::WriteOnly)
        .returned(Returned::Never),
    complex("emails", &EMAIL_SUBS, "Email addresses for the user.").multi(),
    complex("phoneNumbers", &PHONE_SUBS, "Phone numbers for the User.").multi(),
    complex("ims", &IM_SUBS, "Instant messaging addresses for the User.").multi(),
    complex("photos", &PHOTO_SUBS, "URLs of photos of the User.").multi(),
    complex("addresses", &ADDRESS_SUBS, "A physical mailing address for this User.").multi(),
    complex("groups", &USER_GROUP_SUBS, "A list of groups to which the user belongs.").multi().read_only(),
    complex("entitlements", &ENTITLEMENT_SUBS, "A list of entitlements for the User.").multi(),
    complex("roles", &ROLE_SUBS, "A list of roles for the User.").multi(),
    complex("x509Certificates", &X509_SUBS, "A list of certificates issued to the User.").multi(),
];

static MANAGER_SUBS: [AttrDef; 3] = [
    string("value", "The id of the SCIM resource representing the User's manager.").exact(),
    reference("$ref", &["User"], "The URI of the SCIM resource representing the User's manager."),
    string("displayName", "The displayName of the User's manager.").read_only(),
];

static ENTERPRISE_ATTRS: [AttrDef; 6] = [
    string("employeeNumber", "Numeric or alphanumeric identifier assigned to a person."),
    string("costCenter", "Identifies the name of a cost center."),
    string("organization", "Identifies the name of an organization."),
    string("division", "Identifies the name of a division."),
    string("department", "Identifies the name of a department."),
    complex("manager", &MANAGER_SUBS, "The User's manager."),
];

static MEMBER_SUBS: [AttrDef; 4] = [
    string("value", "Identifier of the member of this Group.").exact().mutability(Mutability::Immutable),
    reference(
        "$ref",
        &["User", "Group"],
        "The URI corresponding to a SCIM resource that is a member of this Group.",
    )
    .mutability(Mutability::Immutable),
    string("display", "A human-readable name, primarily used for display purposes.").read_only(),
    string("type", "A label indicating the type of resource, e.g., 'User' or 'Group'.")
        .canonical(&["User", "Group"])
        .mutability(Mutability::Immutable),
];

static GROUP_ATTRS: [AttrDef; 2] = [
    // RFC 7643 makes it optional; Entra matches groups by it, so scim-edge requires it.
    string("displayName", "A human-readable name for the Group.").required(),
    complex("members", &MEMBER_SUBS, "A list of members of the Group.").multi(),
];

pub static USER: SchemaDef =
    SchemaDef { id: USER_SCHEMA, name: "User", description: "User Account", attributes: &USER_ATTRS };
pub static ENTERPRISE_USER: SchemaDef = SchemaDef {
    id: ENTERPRISE_USER_SCHEMA,
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: &ENTERPRISE_ATTRS,
};
pub static GROUP: SchemaDef =
    SchemaDef { id: GROUP_SCHEMA, name: "Group", description: "Group", attributes: &GROUP_ATTRS };

static ALL_SCHEMAS: [&SchemaDef; 3] = [&USER, &ENTERPRISE_USER, &GROUP];
static USER_EXTENSIONS: [&SchemaDef; 1] = [&ENTERPRISE_USER];

/// The two resource types scim-edge serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    User,
    Group,
}

impl ResourceKind {
    /// `User` / `Group`: the ResourceType id and `meta.resourceType`.
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "/Users",
            ResourceKind::Group => "/Groups",
        }
    }
    pub fn core(self) -> &'static SchemaDef {
        match self {
            ResourceKind::User => &USER,
            ResourceKind::Group => &GROUP,
        }
    }
    pub fn extensions(self) -> &'static [&'static SchemaDef] {
        match self {
            ResourceKind::User => &USER_EXTENSIONS,
            ResourceKind::Group => &[],
        }
    }
}

fn find<'a>(defs: &'a [AttrDef], name: &str) -> Option<&'a AttrDef> {
    defs.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

/// The key of `map` that equals `name` ignoring ASCII case (the stored spelling).
pub(crate) fn find_key(map: &Map<String, Value>, name: &str) -> Option<String> {
    if map.contains_key(name) {
        return Some(name.to_owned());
    }
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------
// Resolving attribute keys and paths
// ---------------------------------------------------------------------------------------

/// Which object of the stored map an attribute lives in.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Container<'k> {
    /// The resource itself (core schema and common attributes).
    Root,
    /// A known extension object (enterprise User).
    Ext(&'static SchemaDef),
    /// An extension the table does not know, keyed by its URN as the client spelt it.
    Other(&'k str),
}

impl PartialEq for Container<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Container::Root, Container::Root) => true,
            (Container::Ext(a), Container::Ext(b)) => a.id == b.id,
            (Container::Other(a), Container::Other(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

/// A sub-attribute reference, canonical when known.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SubRef<'k> {
    pub name: &'k str,
    pub def: Option<&'static AttrDef>,
}

/// An attribute reference, canonical when known.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AttrRef<'k> {
    pub name: &'k str,
    pub def: Option<&'static AttrDef>,
    pub sub: Option<SubRef<'k>>,
}

/// An attribute key (`displayName`, `name.givenName`, `urn:…:enterprise:2.0:User:manager`,
/// `urn:…:enterprise:2.0:User`) resolved against the table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Located<'k> {
    pub container: Container<'k>,
    /// `None`: the key names the container itself (an extension URN).
    pub attr: Option<AttrRef<'k>>,
    /// The key carried a schema URN prefix.
    pub prefixed: bool,
}

pub(crate) fn resolve_sub<'k>(parent: Option<&'static AttrDef>, name: &'k str) -> SubRef<'k> {
    match parent.and_then(|p| p.sub(name)) {
        Some(def) => SubRef { name: def.name, def: Some(def) },
        None => SubRef { name, def: None },
    }
}

/// Resolves `name[.sub]` inside `container`. For the root, a name the core schema and the
/// common attributes do not define but an extension does (`manager`, `department`) resolves
/// into that extension: clients, Entra among them, send `manager` without its URN.
pub(crate) fn locate_in<'k>(kind: ResourceKind, container: Container<'k>, path: &'k str) -> Located<'k> {
    let (name, sub) = match path.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (path, None),
    };
    let (container, def) = match container {
        Container::Root => match find(kind.core().attributes, name).or_else(|| find(&COMMON, name)) {
            Some(d) => (Container::Root, Some(d)),
            None => kind
                .extensions()
                .iter()
                .find_map(|ext| find(ext.attributes, name).map(|d| (Container::Ext(ext), Some(d))))
                .unwrap_or((Container::Root, None)),
        },
        Container::Ext(ext) => (Container::Ext(ext), find(ext.attributes, name)),
        Container::Other(urn) => (Container::Other(urn), None),
    };
    let attr = AttrRef { name: def.map_or(name, |d| d.name), def, sub: sub.map(|s| resolve_sub(def, s)) };
    Located { container, attr: Some(attr), prefixed: false }
}

/// Resolves a top-level attribute key of a body or of a path-less PATCH value.
pub(crate) fn locate(kind: ResourceKind, key: &str) -> Located<'_> {
    // The resource's own core URN as a prefix: `urn:…:core:2.0:User:userName`.
    let core = kind.core();
    if key.eq_ignore_ascii_case(core.id) {
        return Located { container: Container::Root, attr: None, prefixed: true };
    }
    if let Some(rest) = strip_prefix_ci(key, core.id).and_then(|r| r.strip_prefix(':')) {
        return Located { prefixed: true, ..locate_in(kind, Container::Root, rest) };
    }
    for ext in kind.extensions() {
        if key.eq_ignore_ascii_case(ext.id) {
            return Located { container: Container::Ext(ext), attr: None, prefixed: false };
        }
        if let Some(rest) = strip_prefix_ci(key, ext.id).and_then(|r| r.strip_prefix(':')) {
            return Located { prefixed: true, ..locate_in(kind, Container::Ext(ext), rest) };
        }
    }
    if key.contains("://") {
        // A URL used as a schema id (Entra's `http://schemas.microsoft.com/…/2.0/Group`).
        return Located { container: Container::Other(key), attr: None, prefixed: false };
    }
    if strip_prefix_ci(key, "urn:").is_some() {
        let (urn, rest) = split_unknown_urn(key);
        return match rest {
            None => Located { container: Container::Other(urn), attr: None, prefixed: false },
            Some(rest) => Located { prefixed: true, ..locate_in(kind, Container::Other(urn), rest) },
        };
    }
    locate_in(kind, Container::Root, key)
}

/// An unknown URN key without a version segment (`urn:a:b:c`) is ambiguous: attribute `c` of
/// schema `urn:a:b`, or the whole schema `urn:a:b:c`. [`split_unknown_urn`] reads it as an
/// attribute; when the value is an object it is read as the schema's object instead, because
/// that is what [`normalize`] itself stores for `{"urn:a:b:c:d": "v"}` (`{"urn:a:b:c":
/// {"d": "v"}}`): read the other way, storing a stored resource again would nest it one level
/// deeper each time (found by the `patch_apply` fuzz target).
fn settle_unknown_urn<'k>(loc: Located<'k>, key: &'k str, value: &Value) -> Located<'k> {
    match loc.container {
        Container::Other(_) if loc.attr.is_some() && value.is_object() && !has_version_segment(key) => {
            Located { container: Container::Other(key), attr: None, prefixed: false }
        }
        _ => loc,
    }
}

fn is_version(seg: &str) -> bool {
    seg.starts_with(|c: char| c.is_ascii_digit()) && seg.chars().all(|c| c.is_ascii_digit() || c == '.')
}

fn has_version_segment(key: &str) -> bool {
    key.split(':').skip(1).any(is_version)
}

/// Splits an unknown `urn:…[:attr[.sub]]` into the schema URN and the attribute path.
/// SCIM schema URNs end in `…:<version>:<Resource>` (`…:CustomExtensionName:2.0:User`), so the
/// URN runs to the segment after the first version-like one; without a version segment the
/// last segment is taken as the attribute (RFC 7644 §3.10: the attribute name follows the
/// last colon).
fn split_unknown_urn(key: &str) -> (&str, Option<&str>) {
    let mut start = 0;
    let mut after_version = false;
    for (i, seg) in key.split(':').enumerate() {
        let end = start + seg.len();
        if after_version {
            return match key.get(end + 1..) {
                Some(rest) if !rest.is_empty() => (key.get(..end).unwrap_or(key), Some(rest)),
                _ => (key, None),
            };
        }
        if i > 0 && is_version(seg) {
            after_version = true;
        }
        start = end + 1;
    }
    if after_version {
        return (key, None);
    }
    match key.rsplit_once(':') {
        Some((urn, attr)) if !attr.is_empty() => (urn, Some(attr)),
        _ => (key, None),
    }
}

/// An `AttrPath` of a filter or PATCH path as one key (`urn:name.sub`), however the parser
/// split the URN from the name.
pub(crate) fn path_key(path: &AttrPath) -> String {
    let mut key = match &path.urn {
        Some(urn) => format!("{urn}:{}", path.name),
        None => path.name.clone(),
    };
    if let Some(sub) = &path.sub {
        key.push('.');
        key.push_str(sub);
    }
    key
}

/// Whether string comparisons on `path` are case-sensitive, for the filter evaluator.
/// A complex attribute without a sub-attribute (`emails eq "x"`, `manager eq "id"`) compares
/// its `value`. Unknown attributes compare case-insensitively.
pub fn case_exact(kind: ResourceKind, path: &AttrPath) -> bool {
    let key = path_key(path);
    let Some(attr) = locate(kind, &key).attr else { return false };
    let def = match attr.sub {
        Some(sub) => sub.def,
        None => attr.def.map(|d| d.sub("value").unwrap_or(d)),
    };
    def.is_some_and(|d| d.case_exact)
}

// ---------------------------------------------------------------------------------------
// Normalisation of bodies
// ---------------------------------------------------------------------------------------

/// The attributes to store for a POST or PUT body of a `kind` resource.
///
/// - The body must be a JSON object (400 `invalidSyntax`).
/// - `id`, `meta` and `schemas` are server-managed and ignored (RFC 7643 §3.1).
/// - Attribute names are canonicalised at every level (`"Department"`, `"Manager":{"Value":…}`);
///   URN-prefixed keys (`urn:…:enterprise:2.0:User:department`) are folded into their
///   extension object, and an unqualified enterprise attribute (`manager`) too.
/// - Null values, empty arrays and empty objects are dropped (Entra sends `"title":null`).
/// - `"True"` / `"false"` (any case) become booleans for boolean attributes (Entra and
///   RefCode send `"active":"True"`).
/// - A single-valued complex attribute with a `value` (`manager`) also takes a bare string or
///   a one-element array (Entra's manager forms); an empty `value` clears it.
/// - Wrong types are 400 `invalidValue` naming the attribute.
/// - readOnly attributes (`groups` on a User, `manager.displayName`, `members.display`) are
///   dropped: the service provider owns them.
/// - `password` is dropped. scim-edge provisions accounts for a product behind the gateway
///   and authenticates nobody with it; keeping a credential (even hashed) would turn the
///   key-value store into a password store for no use. It is writeOnly / returned "never",
///   so no client can observe the difference.
/// - Unknown attributes and unknown extension objects are kept exactly as sent.
/// - Uniqueness of `type` within a multi-valued attribute (Entra's "no two work emails")
///   is not enforced: values are kept as sent.
/// - `userName` (User) / `displayName` (Group) must be a non-empty string
///   (400 `invalidValue`).
///
/// Group `members` are validated and kept in the result; the group service takes them out
/// (see [`member_ids`]) because memberships are stored apart from the group.
pub fn normalize(kind: ResourceKind, body: &Value) -> ScimResult<Map<String, Value>> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the request body must be a JSON object"))?;
    let mut out = Map::new();
    // Extension attributes given outside their extension object are applied after it, and
    // URN-prefixed ones last, so the most specific spelling wins whatever the map's
    // iteration order: `{"urn:…:User": {"department": "a"}, "department": "b",
    // "urn:…:User:department": "c"}` stores "c".
    let priority = |loc: &Located<'_>| match (loc.prefixed, loc.container, loc.attr.is_some()) {
        (true, _, _) => 2,
        (false, Container::Ext(_), true) => 1,
        _ => 0,
    };
    for pass in 0..3 {
        for (key, value) in obj {
            if value.is_null() {
                continue;
            }
            let loc = settle_unknown_urn(locate(kind, key), key, value);
            if priority(&loc) == pass {
                put(kind, &mut out, key, loc, value)?;
            }
        }
    }
    for ext in kind.extensions() {
        if out.get(ext.id).is_some_and(|v| v.as_object().is_some_and(Map::is_empty)) {
            out.remove(ext.id);
        }
    }
    let required = kind.core().attributes.iter().filter(|d| d.required);
    for def in required {
        match out.get(def.name) {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "{} is required (a non-empty string)",
                    def.name
                )))
            }
        }
    }
    Ok(out)
}

/// Stores one top-level body entry into `out`.
fn put(
    kind: ResourceKind,
    out: &mut Map<String, Value>,
    key: &str,
    loc: Located<'_>,
    value: &Value,
) -> ScimResult<()> {
    let Some(attr) = loc.attr else {
        // The key names a container.
        return match loc.container {
            Container::Root => {
                // `"urn:…:core:2.0:User": {…}`: its members are root attributes.
                let inner = value
                    .as_object()
                    .ok_or_else(|| ScimError::invalid_value(format!("\"{key}\" must be an object")))?;
                for (k, v) in inner {
                    if !v.is_null() {
                        put(kind, out, k, locate_in(kind, Container::Root, k), v)?;
                    }
                }
                Ok(())
            }
            Container::Ext(ext) => {
                let inner = value
                    .as_object()
                    .ok_or_else(|| ScimError::invalid_value(format!("\"{}\" must be an object", ext.id)))?;
                let normalized = normalize_complex(ext.attributes, inner, None)?;
                if let Some(target) = container_mut(out, ext.id) {
                    merge_into(target, normalized);
                }
                Ok(())
            }
            Container::Other(urn) => {
                match (value, find_key(out, urn)) {
                    (Value::Object(inner), Some(existing)) => {
                        if let Some(Value::Object(target)) = out.get_mut(&existing) {
                            merge_into(target, inner.clone());
                        }
                    }
                    _ => {
                        out.insert(key.to_owned(), value.clone());
                    }
                }
                Ok(())
            }
        };
    };
    if loc.container == Container::Root && attr.name.eq_ignore_ascii_case("schemas") {
        return Ok(());
    }
    let target = match loc.container {
        Container::Root => Some(out),
        Container::Ext(ext) => container_mut(out, ext.id),
        Container::Other(urn) => container_mut(out, urn),
    };
    let Some(target) = target else { return Ok(()) };
    let Some(def) = attr.def else {
        // Unknown attribute: as sent. Inside an unknown extension a dotted key still means
        // attribute.sub.
        match (loc.container, attr.sub) {
            (Container::Other(_), Some(sub)) => {
                let parent = target.entry(attr.name.to_owned()).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(p) = parent {
                    p.insert(sub.name.to_owned(), value.clone());
                }
            }
            (Container::Root, _) => {
                target.insert(key.to_owned(), value.clone());
            }
            _ => {
                let name = match attr.sub {
                    Some(sub) => format!("{}.{}", attr.name, sub.name),
                    None => attr.name.to_owned(),
                };
                target.insert(name, value.clone());
            }
        }
        return Ok(());
    };
    if !stored(def) {
        return Ok(());
    }
    match attr.sub {
        None => {
            if let Some(v) = normalize_value(def, value, def.name)? {
                match (target.get_mut(def.name), v) {
                    (Some(Value::Object(existing)), Value::Object(new)) if !def.has_value_sub() => {
                        merge_into(existing, new);
                    }
                    (_, v) => {
                        target.insert(def.name.to_owned(), v);
                    }
                }
            }
        }
        Some(sub) if def.ty == AttrType::Complex && !def.multi_valued => {
            // `name.givenName` / `urn:…:User:manager.value` as a key.
            let (name, v) = match sub.def {
                None => (sub.name, Some(value.clone())),
                Some(sub_def) if !stored(sub_def) => return Ok(()),
                Some(sub_def) => {
                    let label = format!("{}.{}", def.name, sub_def.name);
                    (sub_def.name, normalize_value(sub_def, value, &label)?)
                }
            };
            if let (Some(v), Some(parent)) = (v, container_mut(target, def.name)) {
                parent.insert(name.to_owned(), v);
            }
        }
        Some(_) => {
            // `emails.value` as a body key means nothing in SCIM: kept as sent, like any
            // other unknown attribute.
            target.insert(key.to_owned(), value.clone());
        }
    }
    Ok(())
}

/// Whether values of this attribute are kept: readOnly ones belong to the service provider
/// and writeOnly ones (`password`) are never stored (see [`normalize`]).
pub(crate) fn stored(def: &AttrDef) -> bool {
    !matches!(def.mutability, Mutability::ReadOnly | Mutability::WriteOnly)
}

/// The object under `key` (case-insensitive), created empty if absent or not an object.
/// Always `Some`; an `Option` only because `Value` cannot prove it is an object.
pub(crate) fn container_mut<'m>(
    map: &'m mut Map<String, Value>,
    key: &str,
) -> Option<&'m mut Map<String, Value>> {
    let key = find_key(map, key).unwrap_or_else(|| key.to_owned());
    let slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// Shallow merge: `new`'s entries replace `target`'s of the same name (ignoring case).
pub(crate) fn merge_into(target: &mut Map<String, Value>, new: Map<String, Value>) {
    for (k, v) in new {
        let key = find_key(target, &k).unwrap_or(k);
        target.insert(key, v);
    }
}

/// Normalises a value of attribute `def`: `None` when it is to be dropped (null or empty).
/// `label` names the attribute in error details (`emails`, `name.givenName`).
pub(crate) fn normalize_value(def: &AttrDef, value: &Value, label: &str) -> ScimResult<Option<Value>> {
    if !def.multi_valued {
        return normalize_single(def, value, label);
    }
    let items = match value {
        Value::Null => return Ok(None),
        Value::Array(items) => items,
        _ => return Err(type_error(def, label)),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if let Some(v) = normalize_single(def, item, label)? {
            out.push(v);
        }
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// Normalises one value (one element of a multi-valued attribute).
pub(crate) fn normalize_single(def: &AttrDef, value: &Value, label: &str) -> ScimResult<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    let ok = |v: Value| Ok(Some(v));
    match def.ty {
        AttrType::String | AttrType::Reference | AttrType::DateTime | AttrType::Binary => match value {
            Value::String(_) => ok(value.clone()),
            _ => Err(type_error(def, label)),
        },
        AttrType::Boolean => match value {
            Value::Bool(_) => ok(value.clone()),
            // Entra sends `"active":"False"` (RefCode issue #21: "our service sends it as a
            // string today"), RefCode's own tests `"True"`.
            Value::String(s) if s.eq_ignore_ascii_case("true") => ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => ok(Value::Bool(false)),
            _ => Err(type_error(def, label)),
        },
        AttrType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => ok(value.clone()),
            _ => Err(type_error(def, label)),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => ok(value.clone()),
            _ => Err(type_error(def, label)),
        },
        AttrType::Complex => {
            let single_ref = !def.multi_valued && def.has_value_sub();
            match value {
                Value::Object(obj) => {
                    let m = normalize_complex(def.sub_attributes, obj, Some(label))?;
                    // A reference without its `value` (e.g. only a readOnly displayName, or
                    // Entra's `""` to clear the manager) references nothing.
                    if m.is_empty() || (single_ref && m.get("value").is_some_and(|v| v.as_str() == Some("")))
                    {
                        return Ok(None);
                    }
                    ok(Value::Object(m))
                }
                Value::String(s) if single_ref => {
                    if s.is_empty() {
                        return Ok(None);
                    }
                    ok(json!({ "value": s }))
                }
                // Entra's older manager form: `[{"$ref": …, "value": …}]`.
                Value::Array(items) if !def.multi_valued && items.len() <= 1 => match items.first() {
                    None => Ok(None),
                    Some(first @ (Value::Object(_) | Value::String(_))) => {
                        normalize_single(def, first, label)
                    }
                    Some(_) => Err(type_error(def, label)),
                },
                _ => Err(type_error(def, label)),
            }
        }
    }
}

/// Normalises the members of a complex value (or of an extension object) against `subs`.
fn normalize_complex(
    subs: &'static [AttrDef],
    obj: &Map<String, Value>,
    label: Option<&str>,
) -> ScimResult<Map<String, Value>> {
    let mut out = Map::new();
    for (key, value) in obj {
        if value.is_null() {
            continue;
        }
        let Some(def) = find(subs, key) else {
            out.insert(key.clone(), value.clone());
            continue;
        };
        if !stored(def) {
            continue;
        }
        let sub_label = match label {
            Some(l) => format!("{l}.{}", def.name),
            None => def.name.to_owned(),
        };
        if let Some(v) = normalize_value(def, value, &sub_label)? {
            match (out.get_mut(def.name), v) {
                (Some(Value::Object(existing)), Value::Object(new)) if !def.has_value_sub() => {
                    merge_into(existing, new)
                }
                (_, v) => {
                    out.insert(def.name.to_owned(), v);
                }
            }
        }
    }
    Ok(out)
}

fn type_error(def: &AttrDef, label: &str) -> ScimError {
    let expected = match (def.ty, def.multi_valued) {
        (AttrType::Complex, true) => "an array of objects",
        (AttrType::Complex, false) if def.has_value_sub() => "an object with a \"value\"",
        (AttrType::Complex, false) => "an object",
        (AttrType::Boolean, false) => "a boolean",
        (AttrType::Integer, false) => "an integer",
        (AttrType::Decimal, false) => "a number",
        (_, false) => "a string",
        (AttrType::Boolean, true) => "an array of booleans",
        (AttrType::Integer | AttrType::Decimal, true) => "an array of numbers",
        (_, true) => "an array of strings",
    };
    ScimError::invalid_value(format!("\"{label}\" must be {expected}"))
}

/// Member ids of a group `members` value: an array of `{"value": id, …}` objects, one such
/// object, or bare id strings (RefCode's tests send `"value":"string id 1"`). Ids are
/// returned as given; whether they name existing users is the service's business.
/// Entries without a string `value` are 400 `invalidValue`.
pub fn member_ids(value: &Value) -> ScimResult<Vec<String>> {
    fn one(item: &Value, out: &mut Vec<String>) -> ScimResult<()> {
        let id = match item {
            Value::String(s) => Some(s.as_str()),
            Value::Object(obj) => find_key(obj, "value").and_then(|k| obj.get(&k)).and_then(Value::as_str),
            _ => None,
        };
        match id {
            Some(id) if !id.is_empty() => {
                out.push(id.to_owned());
                Ok(())
            }
            _ => Err(ScimError::invalid_value(
                "each member must be an object with a non-empty string \"value\" (the member's id)",
            )),
        }
    }
    let mut out = Vec::new();
    match value {
        Value::Array(items) => {
            for item in items {
                one(item, &mut out)?;
            }
        }
        other => one(other, &mut out)?,
    }
    Ok(out)
}

/// The `schemas` array of a response for a resource with these stored attributes: the core
/// URN, the enterprise URN if its object is present and non-empty, and the key of every
/// other extension object present.
pub fn schemas_for(kind: ResourceKind, attrs: &Map<String, Value>) -> Vec<&str> {
    let nonempty_object = |v: &Value| v.as_object().is_some_and(|m| !m.is_empty());
    schemas_of(kind, attrs.iter().map(|(k, v)| (k.as_str(), nonempty_object(v))))
}

/// [`schemas_for`] over (top-level key, whether its value is a non-empty object), in key
/// order: for a record whose values are not parsed (`users::Stored`).
pub fn schemas_of<'a>(
    kind: ResourceKind,
    attrs: impl Iterator<Item = (&'a str, bool)> + Clone,
) -> Vec<&'a str> {
    let mut out: Vec<&'a str> = vec![kind.core().id];
    for ext in kind.extensions() {
        if attrs.clone().any(|(k, object)| object && k == ext.id) {
            out.push(ext.id);
        }
    }
    for (key, object) in attrs {
        let is_extension =
            || matches!(locate(kind, key), Located { container: Container::Other(_), attr: None, .. });
        if object && is_extension() {
            out.push(key);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Discovery documents
// ---------------------------------------------------------------------------------------

fn attr_json(def: &AttrDef) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), def.name.into());
    m.insert("type".into(), def.ty.as_str().into());
    m.insert("multiValued".into(), def.multi_valued.into());
    m.insert("description".into(), def.description.into());
    m.insert("required".into(), def.required.into());
    m.insert("caseExact".into(), def.case_exact.into());
    m.insert("mutability".into(), def.mutability.as_str().into());
    m.insert("returned".into(), def.returned.as_str().into());
    m.insert("uniqueness".into(), def.uniqueness.as_str().into());
    if !def.canonical_values.is_empty() {
        m.insert("canonicalValues".into(), def.canonical_values.into());
    }
    if def.ty == AttrType::Reference {
        m.insert("referenceTypes".into(), def.reference_types.into());
    }
    if def.ty == AttrType::Complex {
        let subs: Vec<Value> = def.sub_attributes.iter().map(attr_json).collect();
        m.insert("subAttributes".into(), subs.into());
    }
    Value::Object(m)
}

/// The uniqueness in force for an attribute of `schema`: group `displayName` and `externalId`
/// are unique only when the configuration says so (`crate::config::UniqueAttributes`).
fn attr_json_in_force(schema: &SchemaDef, def: &AttrDef, unique: &UniqueAttributes) -> Value {
    let mut v = attr_json(def);
    let server = match (schema.id, def.name) {
        (GROUP_SCHEMA, "displayName") => unique.group_display_name,
        (_, "externalId") => unique.external_id,
        _ => return v,
    };
    if let Some(m) = v.as_object_mut() {
        let uniqueness = if server { Uniqueness::Server } else { Uniqueness::None };
        m.insert("uniqueness".into(), uniqueness.as_str().into());
    }
    v
}

fn schema_json(base: &str, schema: &SchemaDef, unique: &UniqueAttributes) -> Value {
    let mut attributes: Vec<Value> =
        schema.attributes.iter().map(|a| attr_json_in_force(schema, a, unique)).collect();
    // `externalId` is a common attribute, which RFC 7643 §8.7.1 leaves out of the schemas; it is
    // listed on the resources' core schemas when made unique, since that is not RFC 7643's.
    let core = schema.id == USER_SCHEMA || schema.id == GROUP_SCHEMA;
    if core && unique.external_id {
        if let Some(def) = find(&COMMON, "externalId") {
            attributes.push(attr_json_in_force(schema, def, unique));
        }
    }
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": attributes,
        "meta": {
            "resourceType": "Schema",
            "location": format!("{}/Schemas/{}", base.trim_end_matches('/'), schema.id),
        },
    })
}

fn list_response(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    })
}

/// `GET /Schemas`: a ListResponse of every Schema resource (RFC 7643 §7). `base` is the
/// connection's SCIM base URL (`https://host/scim/v2/<conn>`); `meta.location`s are absolute.
/// `unique`: the configured uniqueness, which the attributes' `uniqueness` reports.
pub fn schemas_list(base: &str, unique: &UniqueAttributes) -> Value {
    list_response(ALL_SCHEMAS.iter().map(|s| schema_json(base, s, unique)).collect())
}

/// `GET /Schemas/{id}` (id compared ignoring ASCII case, as URNs are).
pub fn schema(base: &str, id: &str, unique: &UniqueAttributes) -> Option<Value> {
    ALL_SCHEMAS.iter().find(|s| s.id.eq_ignore_ascii_case(id)).map(|s| schema_json(base, s, unique))
}

fn resource_type_json(base: &str, kind: ResourceKind) -> Value {
    let mut doc = json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": kind.name(),
        "name": kind.name(),
        "endpoint": kind.endpoint(),
        "description": kind.core().description,
        "schema": kind.core().id,
        "meta": {
            "resourceType": "ResourceType",
            "location": format!("{}/ResourceTypes/{}", base.trim_end_matches('/'), kind.name()),
        },
    });
    if !kind.extensions().is_empty() {
        let exts: Vec<Value> =
            kind.extensions().iter().map(|e| json!({ "schema": e.id, "required": false })).collect();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("schemaExtensions".into(), exts.into());
        }
    }
    doc
}

/// `GET /ResourceTypes`: User (with the enterprise extension, not required) and Group.
pub fn resource_types_list(base: &str) -> Value {
    list_response(vec![
        resource_type_json(base, ResourceKind::User),
        resource_type_json(base, ResourceKind::Group),
    ])
}

/// `GET /ResourceTypes/{name}` (`User` / `Group`, ignoring ASCII case).
pub fn resource_type(base: &str, name: &str) -> Option<Value> {
    [ResourceKind::User, ResourceKind::Group]
        .into_iter()
        .find(|k| k.name().eq_ignore_ascii_case(name))
        .map(|k| resource_type_json(base, k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ScimType;

    fn norm(kind: ResourceKind, body: Value) -> Value {
        match normalize(kind, &body) {
            Ok(m) => Value::Object(m),
            Err(e) => panic!("normalize failed: {e:?}"),
        }
    }

    fn norm_err(kind: ResourceKind, body: Value) -> ScimError {
        match normalize(kind, &body) {
            Ok(m) => panic!("expected an error, got {m:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn entra_create_user_example_2_drops_nulls_and_server_attributes() {
        let body = json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "id": "client-chosen",
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
            "active": true,
            "addresses": null,
            "displayName": "Test_User_ab6490ee",
            "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "phoneNumbers": null,
            "preferredLanguage": null,
            "roles": [],
            "title": null,
            "department": null,
            "manager": null,
            ENTERPRISE_USER_SCHEMA: {"department": null, "manager": null}
        });
        assert_eq!(
            norm(ResourceKind::User, body),
            json!({
                "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
                "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
                "active": true,
                "displayName": "Test_User_ab6490ee",
                "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
                "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"}
            })
        );
    }

    #[test]
    fn refcode_capitalised_enterprise_keys_are_canonicalised() {
        let body = json!({
            "UserName": "UserName222",
            "Active": "True",
            "Name": {"FamilyName": "familyName", "GivenName": "givenName", "Formatted": "f"},
            "Emails": [{"Primary": "true", "Type": "work", "Value": "a@example.com"}],
            ENTERPRISE_USER_SCHEMA: {
                "Department": "Tour Operations",
                "EmployeeNumber": "701984",
                "Manager": {"Value": "SuperMan", "displayName": "Clark"}
            }
        });
        assert_eq!(
            norm(ResourceKind::User, body),
            json!({
                "userName": "UserName222",
                "active": true,
                "name": {"familyName": "familyName", "givenName": "givenName", "formatted": "f"},
                "emails": [{"primary": true, "type": "work", "value": "a@example.com"}],
                ENTERPRISE_USER_SCHEMA: {
                    "department": "Tour Operations",
                    "employeeNumber": "701984",
                    // displayName is readOnly: the service provider owns it.
                    "manager": {"value": "SuperMan"}
                }
            })
        );
    }

    #[test]
    fn urn_prefixed_and_unqualified_enterprise_keys_fold_into_the_extension() {
        let body = json!({
            "userName": "u",
            ENTERPRISE_USER_SCHEMA: {"department": "old", "division": "D"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "new",
            "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:costCenter": "CC",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value": "m1",
            "urn:ietf:params:scim:schemas:core:2.0:User:displayName": "Core Prefixed",
            "organization": "Org",
            "division": "D2"
        });
        assert_eq!(
            norm(ResourceKind::User, body),
            json!({
                "userName": "u",
                "displayName": "Core Prefixed",
                ENTERPRISE_USER_SCHEMA: {
                    "department": "new", "division": "D2", "costCenter": "CC",
                    "organization": "Org", "manager": {"value": "m1"}
                }
            })
        );
    }

    #[test]
    fn booleans_as_strings_are_coerced() {
        for (sent, want) in
            [("True", true), ("true", true), ("TRUE", true), ("False", false), ("false", false)]
        {
            let got = norm(ResourceKind::User, json!({"userName": "u", "active": sent}));
            assert_eq!(got.get("active"), Some(&Value::Bool(want)), "{sent}");
        }
        let err = norm_err(ResourceKind::User, json!({"userName": "u", "active": "yes"}));
        assert_eq!(err.detail, "\"active\" must be a boolean");
    }

    #[test]
    fn wrong_types_name_the_attribute() {
        let cases = [
            (json!({"userName": 5}), "\"userName\" must be a string"),
            (json!({"userName": "u", "emails": "a@b"}), "\"emails\" must be an array of objects"),
            (json!({"userName": "u", "emails": ["a@b"]}), "\"emails\" must be an array of objects"),
            (json!({"userName": "u", "active": 1}), "\"active\" must be a boolean"),
            (json!({"userName": "u", "name": "Babs"}), "\"name\" must be an object"),
            (json!({"userName": "u", "name": {"givenName": 3}}), "\"name.givenName\" must be a string"),
            (
                json!({"userName": "u", "emails": [{"primary": "often"}]}),
                "\"emails.primary\" must be a boolean",
            ),
            (
                json!({"userName": "u", ENTERPRISE_USER_SCHEMA: {"department": ["x"]}}),
                "\"department\" must be a string",
            ),
            (
                json!({"userName": "u", ENTERPRISE_USER_SCHEMA: "x"}),
                "\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\" must be an object",
            ),
        ];
        for (body, detail) in cases {
            let err = norm_err(ResourceKind::User, body);
            assert_eq!(err.scim_type, Some(ScimType::InvalidValue), "{detail}");
            assert_eq!(err.detail, detail);
        }
    }

    #[test]
    fn required_attributes() {
        for body in
            [json!({}), json!({"userName": ""}), json!({"userName": null}), json!({"displayName": "x"})]
        {
            let err = norm_err(ResourceKind::User, body);
            assert_eq!(err.scim_type, Some(ScimType::InvalidValue));
            assert!(err.detail.starts_with("userName is required"), "{}", err.detail);
        }
        let err = norm_err(ResourceKind::Group, json!({"externalId": "x"}));
        assert!(err.detail.starts_with("displayName is required"), "{}", err.detail);
    }

    #[test]
    fn body_must_be_an_object() {
        for body in [json!([]), json!("x"), json!(null), json!(1)] {
            let err = norm_err(ResourceKind::User, body);
            assert_eq!(err.scim_type, Some(ScimType::InvalidSyntax));
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn read_only_and_password_are_dropped() {
        let got = norm(
            ResourceKind::User,
            json!({
                "userName": "u", "password": "t1meMa$heen",
                "groups": [{"value": "g1", "display": "G"}],
                "meta": {"created": "2020-01-01T00:00:00Z"}, "id": "x", "schemas": [USER_SCHEMA]
            }),
        );
        assert_eq!(got, json!({"userName": "u"}));
    }

    #[test]
    fn unknown_attributes_and_extensions_are_kept_as_sent() {
        let custom = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
        let got = norm(
            ResourceKind::User,
            json!({
                "userName": "u",
                "favouriteColour": {"Hue": "blue", "nothing": null},
                custom: {"tag": "a"},
                "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:level": "7"
            }),
        );
        assert_eq!(
            got,
            json!({
                "userName": "u",
                "favouriteColour": {"Hue": "blue", "nothing": null},
                custom: {"tag": "a", "level": "7"}
            })
        );
        let group = json!({
            "schemas": [GROUP_SCHEMA, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "meta": {"resourceType": "Group"},
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group": {"x": 1}
        });
        assert_eq!(
            norm(ResourceKind::Group, group),
            json!({
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "displayName",
                "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group": {"x": 1}
            })
        );
    }

    #[test]
    fn duplicate_types_are_kept_as_sent() {
        let emails = json!([{"type": "work", "value": "a@x"}, {"type": "work", "value": "b@x"}]);
        let got = norm(ResourceKind::User, json!({"userName": "u", "emails": emails.clone()}));
        assert_eq!(got.get("emails"), Some(&emails));
    }

    #[test]
    fn manager_forms() {
        let ent = |v: Value| json!({"userName": "u", ENTERPRISE_USER_SCHEMA: {"manager": v}});
        let want = json!({"userName": "u", ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m"}}});
        assert_eq!(norm(ResourceKind::User, ent(json!("m"))), want);
        assert_eq!(norm(ResourceKind::User, ent(json!([{"value": "m"}]))), want);
        assert_eq!(norm(ResourceKind::User, ent(json!({"Value": "m"}))), want);
        assert_eq!(norm(ResourceKind::User, ent(json!(""))), json!({"userName": "u"}));
        assert_eq!(norm(ResourceKind::User, ent(json!({"value": ""}))), json!({"userName": "u"}));
    }

    #[test]
    fn group_members_are_validated_and_kept_for_the_service() {
        let got = norm(
            ResourceKind::Group,
            json!({"displayName": "G", "Members": [{"Value": "u1", "display": "x", "$ref": null}]}),
        );
        assert_eq!(got, json!({"displayName": "G", "members": [{"value": "u1"}]}));
        assert_eq!(member_ids(got.get("members").unwrap_or(&Value::Null)), Ok(vec!["u1".to_owned()]));
        assert_eq!(member_ids(&json!("id")), Ok(vec!["id".to_owned()]));
        assert_eq!(member_ids(&json!({"value": "id"})), Ok(vec!["id".to_owned()]));
        for bad in [json!([{"display": "x"}]), json!([{"value": 3}]), json!([{"value": ""}]), json!(7)] {
            let err = member_ids(&bad).err().map(|e| e.scim_type);
            assert_eq!(err, Some(Some(ScimType::InvalidValue)), "{bad}");
        }
    }

    #[test]
    fn normalize_is_idempotent() {
        let body = json!({
            "userName": "u", "Active": "false", "name": {"GivenName": "g"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "m",
            "custom": {"A": null}, "urn:x:ext:1.0:User": {"k": "v"}
        });
        let once = norm(ResourceKind::User, body);
        assert_eq!(norm(ResourceKind::User, once.clone()), once);
    }

    /// Fuzz finding (patch_apply): an unknown URN key without a version segment was stored
    /// as `{"urn:ietf": {…}}` and, stored again, as `{"urn": {"ietf": {…}}}`.
    #[test]
    fn normalize_is_idempotent_for_versionless_urns() {
        let body = json!({
            "userName": "u", "urn:ietf:padisplayName": "Test User", "urn:a:b:c:d": "v",
            "urn:acme:ext:User:tag.sub": "x", "urn:q:r": {"s": 1}
        });
        let once = norm(ResourceKind::User, body);
        assert_eq!(once["urn:ietf"], json!({"padisplayName": "Test User"}));
        assert_eq!(once["urn:a:b:c"], json!({"d": "v"}));
        assert_eq!(norm(ResourceKind::User, once.clone()), once);
        let twice = norm(ResourceKind::User, once.clone());
        assert_eq!(norm(ResourceKind::User, twice), once);
    }

    #[test]
    fn case_exact_follows_the_table() {
        let p = |urn: Option<&str>, name: &str, sub: Option<&str>| AttrPath {
            urn: urn.map(str::to_owned),
            name: name.to_owned(),
            sub: sub.map(str::to_owned),
        };
        let user = ResourceKind::User;
        assert!(case_exact(user, &p(None, "id", None)));
        assert!(case_exact(user, &p(None, "externalId", None)));
        assert!(case_exact(user, &p(None, "ExternalID", None)));
        assert!(case_exact(user, &p(None, "meta", Some("version"))));
        assert!(!case_exact(user, &p(None, "meta", Some("lastModified"))));
        assert!(case_exact(user, &p(None, "photos", Some("value"))));
        assert!(case_exact(user, &p(None, "groups", Some("$ref"))));
        assert!(!case_exact(user, &p(None, "userName", None)));
        assert!(!case_exact(user, &p(None, "emails", Some("value"))));
        assert!(!case_exact(user, &p(None, "emails", None)));
        assert!(!case_exact(user, &p(None, "displayName", None)));
        assert!(!case_exact(user, &p(None, "name", Some("familyName"))));
        assert!(!case_exact(user, &p(None, "unknownThing", None)));
        assert!(case_exact(user, &p(None, "manager", None)));
        assert!(case_exact(
            user,
            &p(Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"), "manager", Some("value"))
        ));
        // However the parser splits the URN from the name.
        assert!(case_exact(
            user,
            &p(Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0"), "User:manager", Some("value"))
        ));
        assert!(!case_exact(user, &p(Some(ENTERPRISE_USER_SCHEMA), "department", None)));
        assert!(!case_exact(user, &p(Some(USER_SCHEMA), "userName", None)));
        let group = ResourceKind::Group;
        assert!(!case_exact(group, &p(None, "displayName", None)));
        assert!(case_exact(group, &p(None, "members", None)));
        assert!(case_exact(group, &p(None, "members", Some("value"))));
        assert!(!case_exact(group, &p(None, "manager", None)));
    }

    #[test]
    fn schemas_for_lists_present_extensions() {
        let attrs = |v: Value| match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let a = attrs(json!({"userName": "u"}));
        assert_eq!(schemas_for(ResourceKind::User, &a), vec![USER_SCHEMA]);
        let a = attrs(json!({"userName": "u", ENTERPRISE_USER_SCHEMA: {"department": "d"}}));
        assert_eq!(schemas_for(ResourceKind::User, &a), vec![USER_SCHEMA, ENTERPRISE_USER_SCHEMA]);
        let a = attrs(json!({"userName": "u", ENTERPRISE_USER_SCHEMA: {},
            "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User": {"tag": "x"}, "plain": {"a": 1}}));
        assert_eq!(
            schemas_for(ResourceKind::User, &a),
            vec![USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"]
        );
        let a = attrs(json!({"displayName": "g"}));
        assert_eq!(schemas_for(ResourceKind::Group, &a), vec![GROUP_SCHEMA]);
    }

    #[test]
    fn unknown_urns_split_after_the_version() {
        assert_eq!(
            split_unknown_urn("urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User:tag"),
            ("urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User", Some("tag"))
        );
        assert_eq!(
            split_unknown_urn("urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"),
            ("urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User", None)
        );
        assert_eq!(split_unknown_urn("urn:acme:ext:User:tag.sub"), ("urn:acme:ext:User", Some("tag.sub")));
        assert_eq!(split_unknown_urn("urn:acme:1.0"), ("urn:acme:1.0", None));
    }

    fn assert_no_nulls(v: &Value, at: &str) {
        match v {
            Value::Null => panic!("null at {at}"),
            Value::Array(items) => {
                items.iter().enumerate().for_each(|(i, x)| assert_no_nulls(x, &format!("{at}[{i}]")))
            }
            Value::Object(m) => m.iter().for_each(|(k, x)| assert_no_nulls(x, &format!("{at}.{k}"))),
            _ => {}
        }
    }

    fn assert_attribute_shape(attr: &Value) {
        for key in [
            "name",
            "type",
            "multiValued",
            "description",
            "required",
            "caseExact",
            "mutability",
            "returned",
            "uniqueness",
        ] {
            assert!(attr.get(key).is_some(), "{key} missing in {attr}");
        }
        let complex = attr["type"] == "complex";
        assert_eq!(attr.get("subAttributes").is_some(), complex, "{attr}");
        if let Some(subs) = attr.get("subAttributes").and_then(Value::as_array) {
            assert!(!subs.is_empty());
            subs.iter().for_each(assert_attribute_shape);
        }
    }

    #[test]
    fn schemas_discovery_document() {
        let base = "https://scim.example.com/scim/v2/conn1/";
        let doc = schemas_list(base, &UniqueAttributes::default());
        assert_no_nulls(&doc, "$");
        assert_eq!(doc["schemas"], json!([LIST_RESPONSE_SCHEMA]));
        assert_eq!(doc["totalResults"], 3);
        assert_eq!(doc["itemsPerPage"], 3);
        assert_eq!(doc["startIndex"], 1);
        let resources = doc["Resources"].as_array().cloned().unwrap_or_default();
        let ids: Vec<&str> = resources.iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(ids, vec![USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA]);
        for r in &resources {
            assert_eq!(r["schemas"], json!([SCHEMA_SCHEMA]));
            assert!(r["name"].is_string() && r["description"].is_string());
            assert_eq!(r["meta"]["resourceType"], "Schema");
            assert_eq!(
                r["meta"]["location"],
                format!("https://scim.example.com/scim/v2/conn1/Schemas/{}", r["id"].as_str().unwrap_or(""))
            );
            r["attributes"].as_array().into_iter().flatten().for_each(assert_attribute_shape);
        }
        let user = &resources[0];
        let attr = |name: &str| {
            user["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["name"] == name)
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(attr("userName")["required"], true);
        assert_eq!(attr("userName")["uniqueness"], "server");
        assert_eq!(attr("userName")["caseExact"], false);
        assert_eq!(attr("password")["mutability"], "writeOnly");
        assert_eq!(attr("password")["returned"], "never");
        assert_eq!(attr("groups")["mutability"], "readOnly");
        assert_eq!(attr("active")["type"], "boolean");
        assert_eq!(attr("emails")["multiValued"], true);
        assert_eq!(attr("addresses")["subAttributes"].as_array().map(Vec::len), Some(8));
        assert_eq!(attr("name")["subAttributes"].as_array().map(Vec::len), Some(6));
        assert_eq!(attr("profileUrl")["referenceTypes"], json!(["external"]));

        let one = schema(
            base,
            "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER",
            &UniqueAttributes::default(),
        );
        assert_eq!(one.as_ref(), Some(&resources[1]));
        assert_eq!(schema(base, "urn:nope", &UniqueAttributes::default()), None);
    }

    /// `uniqueness` says what the configuration enforces: userName always, group displayName
    /// and externalId (listed then, RFC 7643 leaves common attributes out) only when asked for.
    #[test]
    fn schemas_report_the_uniqueness_in_force() {
        let attr = |doc: &Value, name: &str| {
            doc["attributes"].as_array().into_iter().flatten().find(|a| a["name"] == name).cloned()
        };
        let base = "https://scim.example.com/scim/v2/conn1";
        let off = UniqueAttributes::default();
        let on = UniqueAttributes { external_id: true, group_display_name: true };
        for unique in [off, on] {
            let user = schema(base, USER_SCHEMA, &unique).unwrap_or_default();
            let group = schema(base, GROUP_SCHEMA, &unique).unwrap_or_default();
            let want = if unique.external_id { "server" } else { "none" };
            assert_eq!(attr(&user, "userName").map(|a| a["uniqueness"].clone()), Some(json!("server")));
            assert_eq!(attr(&group, "displayName").map(|a| a["uniqueness"].clone()), Some(json!(want)));
            for doc in [&user, &group] {
                let external = attr(doc, "externalId");
                assert_eq!(external.is_some(), unique.external_id, "{doc}");
                if let Some(x) = external {
                    assert_attribute_shape(&x);
                    assert_eq!(
                        (x["uniqueness"].clone(), x["caseExact"].clone()),
                        (json!("server"), json!(true))
                    );
                }
            }
            assert_eq!(schemas_list(base, &unique)["Resources"][2], group);
        }
    }

    #[test]
    fn resource_types_discovery_document() {
        let base = "https://scim.example.com/scim/v2/conn1";
        let doc = resource_types_list(base);
        assert_no_nulls(&doc, "$");
        assert_eq!(doc["totalResults"], 2);
        let user = resource_type(base, "user");
        assert_eq!(
            user,
            Some(json!({
                "schemas": [RESOURCE_TYPE_SCHEMA],
                "id": "User",
                "name": "User",
                "endpoint": "/Users",
                "description": "User Account",
                "schema": USER_SCHEMA,
                "schemaExtensions": [{"schema": ENTERPRISE_USER_SCHEMA, "required": false}],
                "meta": {"resourceType": "ResourceType", "location": "https://scim.example.com/scim/v2/conn1/ResourceTypes/User"}
            }))
        );
        assert_eq!(doc["Resources"][0], user.unwrap_or_default());
        let group = resource_type(base, "Group").unwrap_or_default();
        assert_eq!(group["endpoint"], "/Groups");
        assert_eq!(group["schema"], GROUP_SCHEMA);
        assert!(group.get("schemaExtensions").is_none());
        assert_eq!(doc["Resources"][1], group);
        assert_eq!(resource_type(base, "Bulk"), None);
    }
}
