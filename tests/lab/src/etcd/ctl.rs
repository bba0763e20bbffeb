//! A test's client of the lab's etcd witness: Debian's `etcdctl` (API v3) run
//! inside a lab host (or the witness), as a person debugging there would run it,
//! with that host's certificate (or none, to see the witness refuse), against
//! every member or chosen ones, each call bounded by one deadline.

use crate::error::{LabError, Result};
use crate::{cmd, Host};
use base64::Engine;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default deadline of one call (dialling included).
const TIMEOUT: Duration = Duration::from_secs(3);

/// `etcdctl` in one host; built by [`crate::Lab::etcdctl`].
#[derive(Debug, Clone)]
pub struct EtcdCtl<'a> {
    host: &'a Host,
    /// Every member's client address, in member order.
    all: Vec<SocketAddr>,
    /// The members this client asks.
    endpoints: Vec<SocketAddr>,
    ca: PathBuf,
    /// Client certificate and key; `None`: the client presents none.
    identity: Option<(PathBuf, PathBuf)>,
    timeout: Duration,
}

impl<'a> EtcdCtl<'a> {
    /// `host`'s client of the members at `all`, with its files in `<tls>/<host>/`.
    pub(crate) fn new(host: &'a Host, all: Vec<SocketAddr>, tls: &Path) -> EtcdCtl<'a> {
        let d = tls.join(&host.name);
        EtcdCtl {
            host,
            endpoints: all.clone(),
            all,
            ca: d.join("ca.crt"),
            identity: Some((d.join("host.crt"), d.join("host.key"))),
            timeout: TIMEOUT,
        }
    }

    /// Present no client certificate (the members require one).
    pub fn without_cert(mut self) -> Self {
        self.identity = None;
        self
    }

    /// Ask member `i` only.
    pub fn member(mut self, i: usize) -> Result<Self> {
        let a = self.all.get(i).ok_or_else(|| {
            LabError::Usage(format!(
                "no etcd member {i}: this lab has {} member(s)",
                self.all.len()
            ))
        })?;
        self.endpoints = vec![*a];
        Ok(self)
    }

    /// The deadline of each call (etcdctl's dial and command time-outs).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// `etcdctl ARGS...` inside the host; its stdout.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let eps: Vec<String> = self
            .endpoints
            .iter()
            .map(|a| format!("https://{a}"))
            .collect();
        let ms = self.timeout.as_millis();
        let mut argv = vec![
            "etcdctl".to_string(),
            format!("--endpoints={}", eps.join(",")),
            format!("--cacert={}", self.ca.display()),
            format!("--dial-timeout={ms}ms"),
            format!("--command-timeout={ms}ms"),
        ];
        if let Some((cert, key)) = &self.identity {
            argv.push(format!("--cert={}", cert.display()));
            argv.push(format!("--key={}", key.display()));
        }
        argv.extend(args.iter().map(|a| a.to_string()));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        cmd::output(self.host.command(&argv)?.env("ETCDCTL_API", "3"))
    }

    /// Store `value` under `key`.
    pub fn put(&self, key: &str, value: &str) -> Result<()> {
        let out = self.run(&["put", "--", key, value])?;
        if out.trim() == "OK" {
            Ok(())
        } else {
            Err(LabError::Etcd(format!(
                "etcdctl put {key:?} answered {out:?}, not OK"
            )))
        }
    }

    /// The value of `key` as text; `None`: no such key.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        let out = self.run(&["get", "--write-out=json", "--", key])?;
        value_of(&out, key)
    }
}

/// The value of `key` in `etcdctl get --write-out=json`'s answer (keys and values
/// are base64; an empty value is left out; no `kvs`: no such key).
fn value_of(json: &str, key: &str) -> Result<Option<String>> {
    let bad = |why: &str| LabError::Etcd(format!("etcdctl get {key:?}: {why} in {json:?}"));
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| bad(&format!("not JSON ({e})")))?;
    let kvs = match v.get("kvs") {
        None => return Ok(None),
        Some(k) => k.as_array().ok_or_else(|| bad("kvs is not a list"))?,
    };
    let [kv] = kvs.as_slice() else {
        return match kvs.len() {
            0 => Ok(None),
            n => Err(bad(&format!("{n} keys for one"))),
        };
    };
    let text = |field: &str| -> Result<String> {
        let Some(b) = kv.get(field) else {
            return Ok(String::new());
        };
        let b = b
            .as_str()
            .ok_or_else(|| bad(&format!("{field} is not text")))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| bad(&format!("{field} is not base64 ({e})")))?;
        String::from_utf8(bytes).map_err(|_| bad(&format!("{field} is not UTF-8")))
    };
    if text("key")? != key {
        return Err(bad("another key answered"));
    }
    text("value").map(Some)
}

#[cfg(test)]
mod tests {
    use super::value_of;

    #[test]
    fn values_are_decoded_and_absence_is_none() {
        // etcdctl 3.4's answers for /k = "v 1", for /e = "" and for a missing key.
        let found = r#"{"header":{"cluster_id":1,"member_id":2,"revision":5,"raft_term":2},
            "kvs":[{"key":"L2s=","create_revision":5,"mod_revision":5,"version":1,"value":"diAx"}],"count":1}"#;
        assert_eq!(value_of(found, "/k").unwrap().as_deref(), Some("v 1"));
        let empty = r#"{"header":{"revision":6},"kvs":[{"key":"L2U=","create_revision":6,"mod_revision":6,"version":1}],"count":1}"#;
        assert_eq!(value_of(empty, "/e").unwrap().as_deref(), Some(""));
        let none = r#"{"header":{"cluster_id":1,"member_id":2,"revision":6,"raft_term":2}}"#;
        assert_eq!(value_of(none, "/k").unwrap(), None);
    }

    #[test]
    fn odd_answers_are_errors_that_quote_them() {
        for (json, why) in [
            ("Error: x", "not JSON"),
            (r#"{"kvs":[{"key":"L2s=","value":"!!"}]}"#, "not base64"),
            (r#"{"kvs":[{"key":"L3g=","value":"dg=="}]}"#, "another key"),
            (r#"{"kvs":[{"key":"L2s="},{"key":"L2s="}]}"#, "2 keys"),
            (r#"{"kvs":[{"key":"L2s=","value":"/w=="}]}"#, "not UTF-8"),
        ] {
            let e = value_of(json, "/k").unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("/k"), "{json}: {e}");
        }
    }
}
