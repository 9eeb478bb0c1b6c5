//! The store against an in-memory etcd (the gateway subset the store uses) behind a scripted
//! network that loses requests and replies, holds requests (a paused member) and answers with
//! election errors: the retry policy and the write markers, end to end but without I/O.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};

use super::*;

/// etcd's key-value store: key → (value, create_revision, mod_revision).
#[derive(Default)]
struct MemEtcd {
    kvs: BTreeMap<Vec<u8>, (Vec<u8>, u64, u64)>,
    revision: u64,
}

fn b64(v: &Value) -> Vec<u8> {
    BASE64.decode(v.as_str().unwrap_or_default()).unwrap()
}

fn num(v: &Value) -> u64 {
    v.as_str().unwrap().parse().unwrap()
}

impl MemEtcd {
    fn kv_json(&self, key: &[u8]) -> Value {
        match self.kvs.get(key) {
            None => json!({"header": {"revision": self.revision.to_string()}}),
            Some((value, create, m)) => json!({"header": {}, "count": "1", "kvs": [{
                "key": BASE64.encode(key), "value": BASE64.encode(value),
                "create_revision": create.to_string(), "mod_revision": m.to_string()}]}),
        }
    }

    fn serve(&mut self, path: &str, body: &[u8]) -> Value {
        let req: Value = serde_json::from_slice(body).unwrap();
        match path {
            "/v3/kv/range" => self.kv_json(&b64(&req["key"])),
            "/v3/kv/txn" => {
                let holds = req["compare"].as_array().unwrap().iter().all(|c| {
                    let (_, create, m) = self.kvs.get(&b64(&c["key"])).cloned().unwrap_or_default();
                    assert_eq!(c["result"], "EQUAL");
                    match c["target"].as_str().unwrap() {
                        "CREATE" => create == num(&c["create_revision"]),
                        "MOD" => m == num(&c["mod_revision"]),
                        t => panic!("compare target {t}"),
                    }
                });
                let ops =
                    req[if holds { "success" } else { "failure" }].as_array().cloned().unwrap_or_default();
                let writes = ops.iter().any(|op| op.get("request_range").is_none());
                if writes {
                    self.revision += 1;
                }
                let mut responses = Vec::new();
                for op in ops {
                    if let Some(put) = op.get("request_put") {
                        let key = b64(&put["key"]);
                        let create = self.kvs.get(&key).map_or(self.revision, |e| e.1);
                        self.kvs.insert(key, (b64(&put["value"]), create, self.revision));
                        responses.push(json!({"response_put": {}}));
                    } else if let Some(del) = op.get("request_delete_range") {
                        self.kvs.remove(&b64(&del["key"]));
                        responses.push(json!({"response_delete_range": {}}));
                    } else {
                        responses
                            .push(json!({"response_range": self.kv_json(&b64(&op["request_range"]["key"]))}));
                    }
                }
                let mut res =
                    json!({"header": {"revision": self.revision.to_string()}, "responses": responses});
                if holds {
                    res["succeeded"] = json!(true);
                }
                res
            }
            p => panic!("path {p}"),
        }
    }

    fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.kvs.get(format!("p/{key}").as_bytes()).map(|e| e.0.clone())
    }
}

/// What the network does with one call.
#[derive(Clone, Copy, Debug)]
enum Fate {
    /// etcd answers.
    Deliver,
    /// Envoy could not connect: never reaches etcd.
    Refused,
    /// etcd applies it; the reply is lost (Envoy's 504 after the timeout).
    LoseReply,
    /// A paused member takes it and answers nothing (504 after the timeout); it applies
    /// when [`Net::release`] says so.
    Hold,
    /// etcd is electing a leader: 503, not applied.
    Election,
    /// etcd applies it and answers 200 with a body that is not its JSON.
    Garbled,
}

/// A function run just before the call with this index.
type Hook = (usize, fn(&Net));

struct Net {
    etcd: RefCell<MemEtcd>,
    script: RefCell<VecDeque<Fate>>,
    held: RefCell<Vec<(String, Vec<u8>)>>,
    clock: Cell<Duration>,
    calls: RefCell<Vec<(u32, String, Fate)>>,
    pauses: RefCell<Vec<Duration>>,
    /// Run just before the call with this index (counting every call).
    hooks: RefCell<Vec<Hook>>,
}

impl Net {
    fn new(script: &[Fate]) -> Net {
        Net {
            etcd: RefCell::default(),
            script: RefCell::new(script.iter().copied().collect()),
            held: RefCell::default(),
            clock: Cell::new(Duration::from_secs(1000)),
            calls: RefCell::default(),
            pauses: RefCell::default(),
            hooks: RefCell::default(),
        }
    }

    fn script(&self, fates: &[Fate]) {
        self.script.borrow_mut().extend(fates.iter().copied());
    }

    /// The paused member resumes: every request it held is applied now.
    fn release(&self) {
        for (path, body) in self.held.borrow_mut().drain(..) {
            self.etcd.borrow_mut().serve(&path, &body);
        }
    }

    fn advance(&self, d: Duration) {
        self.clock.set(self.clock.get() + d);
    }
}

const TIMEOUT_504: &str = "upstream request timeout";

impl Transport for Net {
    async fn call(&self, attempt: u32, path: &str, body: &[u8], timeout: Duration) -> Reply {
        let index = self.calls.borrow().len();
        let due: Vec<fn(&Net)> =
            self.hooks.borrow().iter().filter(|(i, _)| *i == index).map(|(_, h)| *h).collect();
        for hook in due {
            hook(self);
        }
        let fate = self.script.borrow_mut().pop_front().unwrap_or(Fate::Deliver);
        self.calls.borrow_mut().push((attempt, path.to_owned(), fate));
        let timed_out = || Reply::Response { status: 504, body: TIMEOUT_504.into() };
        match fate {
            Fate::Deliver => {
                self.advance(Duration::from_millis(2));
                let res = self.etcd.borrow_mut().serve(path, body);
                Reply::Response { status: 200, body: res.to_string().into_bytes() }
            }
            Fate::Refused => Reply::Response {
                status: 503,
                body: b"upstream connect error or disconnect/reset before headers. reset reason: connection failure"
                    .to_vec(),
            },
            Fate::LoseReply => {
                self.etcd.borrow_mut().serve(path, body);
                self.advance(timeout);
                timed_out()
            }
            Fate::Hold => {
                self.held.borrow_mut().push((path.to_owned(), body.to_vec()));
                self.advance(timeout);
                timed_out()
            }
            Fate::Garbled => {
                self.etcd.borrow_mut().serve(path, body);
                Reply::Response { status: 200, body: b"{not json".to_vec() }
            }
            Fate::Election => Reply::Response {
                status: 503,
                body: br#"{"error":"etcdserver: leader changed","code":14,"message":"etcdserver: leader changed"}"#
                    .to_vec(),
            },
        }
    }

    async fn pause(&self, d: Duration) {
        self.pauses.borrow_mut().push(d);
        self.advance(d);
    }

    fn now(&self) -> Duration {
        self.clock.get()
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the scripted transport never waits"),
    }
}

fn config() -> Rc<EtcdConfig> {
    Rc::new(EtcdConfig {
        prefix: "p/".into(),
        budget: Budget {
            timeout: Duration::from_millis(1000),
            deadline: Duration::from_millis(5000),
            max_attempts: 8,
        },
    })
}

struct World {
    net: Net,
    config: Rc<EtcdConfig>,
    markers: Rc<Markers>,
}

impl World {
    fn new() -> World {
        World { net: Net::new(&[]), config: config(), markers: Rc::new(Markers::new("vm1")) }
    }
    /// The store of a new request.
    fn store(&self) -> EtcdStore<&Net> {
        EtcdStore::new(self.config.clone(), &self.net, self.markers.clone())
    }
    fn fates(&self) -> Vec<String> {
        self.net.calls.borrow_mut().drain(..).map(|(a, p, f)| format!("{a} {p} {f:?}")).collect()
    }
}

use Fate::*;

#[test]
fn reads_are_retried_past_dead_members_and_elections() {
    let w = World::new();
    block_on(w.store().put("k", b"v", Condition::Any)).unwrap();
    w.fates();
    w.net.script(&[Refused, Election, Hold, Deliver]);
    let got = block_on(w.store().get("k")).unwrap().unwrap();
    assert_eq!(got.value, b"v");
    assert_eq!(
        w.fates(),
        [
            "0 /v3/kv/range Refused",
            "1 /v3/kv/range Election",
            "2 /v3/kv/range Hold",
            "3 /v3/kv/range Deliver"
        ]
    );
    // No wait after the refused connection (the balancer moves on), then backoff.
    assert_eq!(*w.net.pauses.borrow(), [Duration::from_millis(100), Duration::from_millis(200)]);
}

#[test]
fn a_write_whose_reply_was_lost_applies_once_and_succeeds() {
    let w = World::new();
    w.net.script(&[LoseReply, Deliver]);
    let v = block_on(w.store().put("u", b"alice", Condition::Absent)).unwrap();
    // The retry found its marker moved by the first attempt: success, at that revision.
    assert_eq!(v, Version(1));
    assert_eq!(w.net.etcd.borrow().value("u"), Some(b"alice".to_vec()));
    assert_eq!(w.net.etcd.borrow().revision, 1, "applied once");
    assert_eq!(w.fates(), ["0 /v3/kv/txn LoseReply", "1 /v3/kv/txn Deliver"]);
    // The next write of this writer reuses the marker, compared at its new revision.
    let v2 = block_on(w.store().put("u", b"bob", Condition::Version(v))).unwrap();
    assert_eq!(v2, Version(2));
    assert_eq!(w.markers.slots_created(), 1);
}

#[test]
fn a_held_write_resent_elsewhere_applies_once_even_when_the_held_copy_arrives() {
    let w = World::new();
    w.net.script(&[Hold, Deliver]);
    let v = block_on(w.store().put("u", b"alice", Condition::Absent)).unwrap();
    assert_eq!(v, Version(1));
    // Another writer deletes it; then the paused member resumes and forwards the held copy,
    // whose own condition (absent) holds again: the marker stops it.
    let other = Markers::new("vm2");
    let store2 = EtcdStore::new(w.config.clone(), &w.net, Rc::new(other));
    block_on(store2.delete("u", Condition::Any)).unwrap();
    w.net.release();
    assert_eq!(w.net.etcd.borrow().value("u"), None, "the held copy did not apply");
}

#[test]
fn a_conflict_after_an_unknown_attempt_fences_the_marker_first() {
    let w = World::new();
    let other = EtcdStore::new(w.config.clone(), &w.net, Rc::new(Markers::new("vm2")));
    block_on(other.put("u", b"taken", Condition::Absent)).unwrap();
    w.fates();
    // The first attempt is held by a paused member; the retry conflicts (the key exists).
    w.net.script(&[Hold, Deliver, Deliver]);
    assert_eq!(block_on(w.store().put("u", b"mine", Condition::Absent)), Err(StoreError::Conflict));
    assert_eq!(
        w.fates(),
        ["0 /v3/kv/txn Hold", "1 /v3/kv/txn Deliver", "0 /v3/kv/txn Deliver"],
        "write, write, fence"
    );
    // The key is deleted, then the held copy arrives: its condition holds again, the fenced
    // marker does not. A conflict reported is a write that never applies.
    block_on(other.delete("u", Condition::Any)).unwrap();
    w.net.release();
    assert_eq!(w.net.etcd.borrow().value("u"), None);
    // The fenced marker is reused at its new revision.
    block_on(w.store().put("u", b"mine", Condition::Absent)).unwrap();
    assert_eq!(w.markers.slots_created(), 1);
}

#[test]
fn a_fence_that_finds_the_write_applied_reports_success() {
    let w = World::new();
    let other = EtcdStore::new(w.config.clone(), &w.net, Rc::new(Markers::new("vm2")));
    block_on(other.put("u", b"taken", Condition::Absent)).unwrap();
    w.fates();
    // Held, then a conflicting retry; before the fence goes out, the key is deleted and the
    // paused member resumes: the held copy applies. The fence finds the marker written.
    w.net.script(&[Hold, Deliver, Deliver]);
    let calls_before = w.net.calls.borrow().len();
    w.net.hooks.borrow_mut().push((calls_before + 2, |net: &Net| {
        net.etcd.borrow_mut().kvs.remove(b"p/u".as_slice());
        net.release();
    }));
    let v = block_on(w.store().put("u", b"mine", Condition::Absent)).unwrap();
    assert_eq!(w.net.etcd.borrow().value("u"), Some(b"mine".to_vec()));
    let applied_at = w.net.etcd.borrow().kvs.get(b"p/u".as_slice()).unwrap().2;
    assert_eq!(v, Version(applied_at));
    assert_eq!(w.fates(), ["0 /v3/kv/txn Hold", "1 /v3/kv/txn Deliver", "0 /v3/kv/txn Deliver"]);
}

#[test]
fn a_write_nobody_answers_is_unavailable_by_the_deadline_and_its_marker_retired() {
    let w = World::new();
    w.net.script(&[Hold; 20]);
    let started = w.net.now();
    let r = block_on(w.store().put("u", b"x", Condition::Absent));
    assert!(matches!(&r, Err(StoreError::Unavailable(why)) if why.contains("failed 5 times")), "{r:?}");
    // Four full timeouts and the backoff between them fit in the 5 s deadline; the fifth got
    // what was left.
    assert_eq!(w.net.now() - started, Duration::from_millis(5000));
    w.net.script(&[]);
    w.net.script.borrow_mut().clear();
    block_on(w.store().put("v", b"y", Condition::Absent)).unwrap();
    assert_eq!(w.markers.slots_created(), 2, "the marker of the unknown write is not reused");
}

#[test]
fn a_write_refused_by_every_member_was_not_sent_and_keeps_its_marker() {
    let w = World::new();
    w.net.script(&[Refused; 8]);
    let r = block_on(w.store().put("u", b"x", Condition::Absent));
    assert!(matches!(&r, Err(StoreError::Unavailable(why)) if why.contains("failed 8 times")), "{r:?}");
    assert_eq!(w.net.etcd.borrow().revision, 0);
    block_on(w.store().put("u", b"x", Condition::Absent)).unwrap();
    assert_eq!(w.markers.slots_created(), 1);
}

#[test]
fn refusals_are_not_retried_and_elections_are_waited_out() {
    let w = World::new();
    w.net.script(&[Election, Election, Election, Deliver]);
    assert_eq!(block_on(w.store().put("u", b"x", Condition::Any)), Ok(Version(1)));
    let ms = Duration::from_millis;
    assert_eq!(*w.net.pauses.borrow(), [ms(50), ms(100), ms(200)]);
    assert_eq!(block_on(w.store().delete("u", Condition::Absent)), Err(StoreError::Conflict));
    assert_eq!(w.fates().len(), 4, "an absent-delete is a conflict without a call");
}

#[test]
fn plain_conflicts_and_concurrent_writes_of_one_writer() {
    let w = World::new();
    let v1 = block_on(w.store().put("k", b"1", Condition::Absent)).unwrap();
    assert_eq!(block_on(w.store().put("k", b"2", Condition::Absent)), Err(StoreError::Conflict));
    assert_eq!(
        block_on(w.store().put("k", b"2", Condition::Version(Version(v1.0 + 7)))),
        Err(StoreError::Conflict)
    );
    let changes = [
        Change { key: "k", value: Some(b"3"), cond: Condition::Version(v1) },
        Change { key: "l", value: Some(b"4"), cond: Condition::Absent },
        Change { key: "m", value: None, cond: Condition::Any },
    ];
    block_on(w.store().apply(&changes)).unwrap();
    assert_eq!(w.net.etcd.borrow().value("k"), Some(b"3".to_vec()));
    assert_eq!(w.net.etcd.borrow().value("l"), Some(b"4".to_vec()));
    // Two writes in flight in one writer use two markers.
    let (s1, s2) = (w.store(), w.store());
    let (a, b) = block_on(async {
        (s1.put("x", b"1", Condition::Any).await, s2.put("y", b"2", Condition::Any).await)
    });
    assert!(a.is_ok() && b.is_ok());
    let many: Vec<String> = (0..200).map(|i| format!("n{i}")).collect();
    let changes: Vec<Change> =
        many.iter().map(|k| Change { key: k, value: Some(b"v"), cond: Condition::Absent }).collect();
    block_on(w.store().apply(&changes)).unwrap();
    assert_eq!(w.net.etcd.borrow().value("n199"), Some(b"v".to_vec()), "more than a txn holds: one by one");
}

#[test]
fn a_write_answered_with_garbage_retires_its_marker() {
    let w = World::new();
    w.net.script(&[Garbled]);
    assert!(matches!(block_on(w.store().put("u", b"1", Condition::Absent)), Err(StoreError::Unavailable(_))));
    // It applied, so the marker moved: reusing it would report the next write as applied.
    let v = block_on(w.store().put("u", b"2", Condition::Version(Version(1)))).unwrap();
    assert_eq!(w.net.etcd.borrow().value("u"), Some(b"2".to_vec()));
    assert_eq!(v, Version(2));
    assert_eq!(w.markers.slots_created(), 2);
}

#[test]
fn after_a_call_failed_past_the_deadline_the_request_makes_no_more_attempts() {
    let w = World::new();
    w.net.script(&[Hold; 20]);
    let store = w.store();
    assert!(block_on(store.get("a")).is_err());
    let calls = w.fates().len();
    assert!(calls >= 2, "retried within the deadline");
    let r = block_on(store.get("b"));
    assert!(matches!(&r, Err(StoreError::Unavailable(why)) if why.contains("not tried")), "{r:?}");
    assert!(w.fates().is_empty(), "no attempt once the request failed past its deadline");
    // A new request tries again.
    w.net.script.borrow_mut().clear();
    assert_eq!(block_on(w.store().get("b")), Ok(None));
}
