//! The fast path of [`super::AuditEvent::with_json`]: a scanner for the common shape of an
//! event line (issue 13: serde_json was 28% of `cairn seal`'s samples).
//!
//! It accepts a strict subset of what serde accepts, and for that subset builds exactly the
//! `RawEvent` serde would: known keys each at most once, strings without escapes or control
//! characters (borrowed), `null` for `ip` and `details`, JSON whitespace, nothing after the
//! object. Anything else (an escape, an unknown or repeated key, a number, a syntax error)
//! returns `None`, and serde parses the line and names the problem exactly as before. The
//! unit tests compare both parsers on valid lines and on every single-byte mutation of them.

use std::borrow::Cow;

use super::{JsonStr, Outcome, RawActor, RawDetails, RawEvent, RawResource, Sensitivity};

struct Scan<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// A string without escapes or control characters, borrowed.
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
        let out = &self.s[start..self.i];
        self.i += 1;
        Some(out)
    }

    fn null(&mut self) -> Option<()> {
        self.ws();
        self.b[self.i..].starts_with(b"null").then(|| self.i += 4)
    }

    /// `{ "k": v, … }`, calling `field(self, key)` for each key to read its value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.str()?;
            self.eat(b':')?;
            field(self, key)?;
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

fn set<T>(slot: &mut Option<T>, v: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None; // a repeated key: serde reports it
    }
    *slot = Some(v?);
    Some(())
}

fn js(s: &str) -> JsonStr<'_> {
    JsonStr(Cow::Borrowed(s))
}

pub(super) fn parse(bytes: &[u8]) -> Option<RawEvent<'_>> {
    let s = std::str::from_utf8(bytes).ok()?;
    let mut p = Scan { b: bytes, s, i: 0 };
    let (mut event_id, mut occurred_at, mut tenant, mut action, mut source) =
        (None, None, None, None, None);
    let (mut actor, mut resource, mut outcome, mut sensitivity) = (None, None, None, None);
    let mut details: Option<Option<RawDetails<'_>>> = None;
    p.object(|p, key| match key {
        "event_id" => set(&mut event_id, p.str()),
        "occurred_at" => set(&mut occurred_at, p.str()),
        "tenant" => set(&mut tenant, p.str()),
        "action" => set(&mut action, p.str()),
        "source" => set(&mut source, p.str()),
        "outcome" => {
            let v = match p.str()? {
                "success" => Outcome::Success,
                "denied" => Outcome::Denied,
                "error" => Outcome::Error,
                _ => return None,
            };
            set(&mut outcome, Some(v))
        }
        "sensitivity" => {
            let v = match p.str()? {
                "public" => Sensitivity::Public,
                "internal" => Sensitivity::Internal,
                "confidential" => Sensitivity::Confidential,
                "pii" => Sensitivity::Pii,
                _ => return None,
            };
            set(&mut sensitivity, Some(v))
        }
        "actor" => {
            let (mut id, mut kind, mut ip) = (None, None, None::<Option<&str>>);
            p.object(|p, key| match key {
                "id" => set(&mut id, p.str()),
                "type" => set(&mut kind, p.str()),
                "ip" => {
                    let v = if p.null().is_some() {
                        Some(None)
                    } else {
                        p.str().map(Some)
                    };
                    set(&mut ip, v)
                }
                _ => None,
            })?;
            let a = RawActor {
                id: js(id?),
                kind: js(kind?),
                ip: ip.flatten().map(js),
            };
            set(&mut actor, Some(a))
        }
        "resource" => {
            let (mut kind, mut id) = (None, None);
            p.object(|p, key| match key {
                "type" => set(&mut kind, p.str()),
                "id" => set(&mut id, p.str()),
                _ => None,
            })?;
            let r = RawResource {
                kind: js(kind?),
                id: js(id?),
            };
            set(&mut resource, Some(r))
        }
        "details" => {
            if p.null().is_some() {
                return set(&mut details, Some(None));
            }
            let mut out: RawDetails<'_> = Vec::new();
            p.object(|p, k| {
                out.push((js(k), js(p.str()?)));
                Some(())
            })?;
            out.sort_by(|x, y| x.0.0.as_bytes().cmp(y.0.0.as_bytes()));
            if out.windows(2).any(|w| w[0].0.0 == w[1].0.0) {
                return None; // a repeated details key: serde reports it
            }
            set(&mut details, Some(Some(out)))
        }
        _ => None,
    })?;
    p.ws();
    if p.i != bytes.len() {
        return None;
    }
    Some(RawEvent {
        event_id: js(event_id?),
        occurred_at: js(occurred_at?),
        tenant: js(tenant?),
        actor: actor?,
        action: js(action?),
        resource: resource?,
        outcome: outcome?,
        source: js(source?),
        sensitivity: sensitivity?,
        details: details.flatten(),
    })
}
