//! context-complete: every record on every topic carries a requestId and a
//! userId header, and a record derived from request R carries R's. A record
//! is derived from R when its payload (or, for a change event, the changed
//! row) names R; a derived record whose payload names no request (a chunk,
//! a claim-check reference, a re-produced record) must still carry the
//! context of the request it came from, so a hop that dropped it shows.

use super::Finding;
use crate::history::compact::{Compact, Ev, Raw};
use pitfall_ports::context::{REQUEST_ID_HEADER, USER_ID_HEADER};
use std::borrow::Cow;

/// A (requestId, userId).
type Context<'a> = (Cow<'a, str>, Cow<'a, str>);

/// The (requestId, userId) a payload says it came from: its own fields, or
/// those of the changed row (`after`) of a change event.
fn origin(value: Raw<'_>) -> Option<Context<'_>> {
    let [request, user, after] = value.get_many(["request_id", "user_id", "after"]);
    fields(request, user).or_else(|| {
        let [request, user] = after?.get_many(["request_id", "user_id"]);
        fields(request, user)
    })
}

fn fields<'a>(request: Option<Raw<'a>>, user: Option<Raw<'a>>) -> Option<Context<'a>> {
    Some((request?.as_str()?, user?.as_str()?))
}

pub fn check(history: &Compact<'_>) -> Vec<Finding> {
    let mut found = Vec::new();
    for (i, e) in history.lines().iter().enumerate() {
        let Ev::Append {
            topic,
            partition,
            offset,
            key,
            headers,
            value,
            ..
        } = e.event
        else {
            continue;
        };
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
                .filter(|v| !v.is_empty())
        };
        if let Some(problem) = problem(header(REQUEST_ID_HEADER), header(USER_ID_HEADER), value) {
            found.push((
                format!("{topic}/{partition}@{offset} (key {key}) {problem}"),
                vec![i],
            ));
        }
    }
    found
}

/// What is wrong with the context a record carries, given its payload.
fn problem(request: Option<&str>, user: Option<&str>, value: Raw<'_>) -> Option<String> {
    let show = |h: Option<&str>| h.map_or("(none)".to_string(), str::to_string);
    match origin(value) {
        Some((r, u)) if (request, user) != (Some(&*r), Some(&*u)) => Some(format!(
            "comes from request {r} of user {u} but carries requestId={}, userId={}",
            show(request),
            show(user)
        )),
        None if request.is_none() || user.is_none() => Some(format!(
            "names no request in its payload and carries requestId={}, userId={}: the hop that derived it dropped the context",
            show(request),
            show(user)
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::checkers::Finding;
    use crate::history::compact::with_entries;
    use crate::history::{Entry, Event};
    use serde_json::json;

    fn check(history: &[Entry]) -> Vec<Finding> {
        with_entries(history, super::check)
    }

    fn append(headers: &[(&str, &str)], value: serde_json::Value) -> Entry {
        Entry {
            t: 1,
            event: Event::Append {
                topic: "t".into(),
                partition: 0,
                offset: 3,
                key: "o1".into(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                producer: "p".into(),
                value,
                wire_bytes: None,
            },
        }
    }

    #[test]
    fn holds_when_headers_carry_the_payloads_request() {
        let h = vec![
            append(
                &[("requestId", "r1"), ("userId", "u1")],
                json!({"request_id": "r1", "user_id": "u1"}),
            ),
            append(
                &[
                    ("type", "cdc-change"),
                    ("requestId", "r2"),
                    ("userId", "u2"),
                ],
                json!({"after": {"request_id": "r2", "user_id": "u2"}}),
            ),
            // A chunk: its payload names no request, its headers do.
            append(
                &[("requestId", "r3"), ("userId", "u3")],
                json!({"bytes": 1234, "blake3": "ab"}),
            ),
        ];
        assert!(check(&h).is_empty());
    }

    #[test]
    fn catches_a_derived_record_that_lost_the_context() {
        // A claim-check reference and a chunk whose payloads name no
        // request: without the headers nothing ties them to theirs.
        let h = vec![
            append(&[("type", "claim-check")], json!({"object": "invoices/o1"})),
            append(
                &[("requestId", "r3")],
                json!({"bytes": 1234, "blake3": "ab"}),
            ),
        ];
        let v = check(&h);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(
            v[0].0
                .ends_with("names no request in its payload and carries requestId=(none), userId=(none): the hop that derived it dropped the context"),
            "{}",
            v[0].0
        );
        assert!(
            v[1].0.contains("carries requestId=r3, userId=(none)"),
            "{}",
            v[1].0
        );
    }

    #[test]
    fn catches_a_hop_that_dropped_or_changed_the_context() {
        let h = vec![
            append(
                &[("type", "cdc-change")],
                json!({"after": {"request_id": "r2", "user_id": "u2"}}),
            ),
            append(
                &[("requestId", "r9"), ("userId", "u1")],
                json!({"request_id": "r1", "user_id": "u1"}),
            ),
        ];
        let v = check(&h);
        assert_eq!(v.len(), 2);
        assert!(
            v[0].0.ends_with("carries requestId=(none), userId=(none)"),
            "{}",
            v[0].0
        );
        assert!(
            v[1].0
                .contains("from request r1 of user u1 but carries requestId=r9"),
            "{}",
            v[1].0
        );
    }
}
