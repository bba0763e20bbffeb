//! `ft-status`/`ft-list` output: a table laid out like virsh's, or JSON for scripts.

use ftd_proxy::DomainStatus;

const HEADER: [&str; 8] = [
    "Domain",
    "State",
    "Peer",
    "Peer-up",
    "Checkpoints",
    "Last-checkpoint",
    "Last-failover",
    "Last-error",
];

/// The rows as virsh prints its tables: a leading space, columns three spaces
/// apart, a rule under the header, an empty line at the end.
pub fn table(rows: &[DomainStatus]) -> String {
    let cells: Vec<[String; 8]> = rows.iter().map(row).collect();
    let mut width = HEADER.map(|h| h.chars().count());
    for r in &cells {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |r: &[String; 8]| {
        let mut s = String::from(" ");
        for (i, (c, w)) in r.iter().zip(width).enumerate() {
            s.push_str(c);
            if i + 1 < r.len() {
                s.push_str(&" ".repeat(w - c.chars().count() + 3));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&HEADER.map(String::from));
    out.push_str(&"-".repeat(width.iter().sum::<usize>() + 3 * (width.len() - 1) + 3));
    out.push('\n');
    for r in &cells {
        out.push_str(&line(r));
    }
    out.push('\n');
    out
}

fn row(s: &DomainStatus) -> [String; 8] {
    let or_dash = |v: &str| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.to_string()
        }
    };
    [
        s.domain.clone(),
        s.state.clone(),
        or_dash(&s.peer),
        if s.peer_up { "yes" } else { "no" }.to_string(),
        s.checkpoints.to_string(),
        if s.last_checkpoint_age < 0.0 {
            "-".to_string()
        } else {
            format!("{:.1}s ago", s.last_checkpoint_age)
        },
        or_dash(&s.last_failover),
        or_dash(&s.last_error),
    ]
}

/// A JSON array of objects with [`DomainStatus`]'s fields.
pub fn json(rows: &[DomainStatus]) -> String {
    let mut s = serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".into());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(domain: &str, state: &str, age: f64, err: &str) -> DomainStatus {
        DomainStatus {
            domain: domain.into(),
            state: state.into(),
            wanted: true,
            peer: "b".into(),
            peer_up: true,
            checkpoints: 42,
            last_checkpoint_age: age,
            last_error: err.into(),
            last_failover: String::new(),
        }
    }

    #[test]
    fn a_table_like_virsh() {
        let t = table(&[
            st("g", "protected", 0.84, ""),
            st("longer-name", "failed", -1.0, "syncing: timed out"),
        ]);
        let expected = [
            " Domain        State       Peer   Peer-up   Checkpoints   Last-checkpoint   Last-failover   Last-error",
            &"-".repeat(112),
            " g             protected   b      yes       42            0.8s ago          -               -",
            " longer-name   failed      b      yes       42            -                 -               syncing: timed out",
            "",
            "",
        ]
        .join("\n");
        // virsh's rule is two characters longer than its longest line.
        let longest = t
            .lines()
            .filter(|l| !l.starts_with('-'))
            .map(str::len)
            .max();
        assert_eq!(longest, Some(110));
        assert_eq!(t, expected, "\n{t}");
    }

    #[test]
    fn an_empty_list_is_a_header() {
        assert_eq!(table(&[]).lines().count(), 3);
    }

    #[test]
    fn json_has_the_status_fields() {
        let v: serde_json::Value =
            serde_json::from_str(&json(&[st("g", "protected", 1.5, "")])).unwrap();
        assert_eq!(v[0]["domain"], "g");
        assert_eq!(v[0]["state"], "protected");
        assert_eq!(v[0]["peer_up"], true);
        assert_eq!(v[0]["checkpoints"], 42);
        assert_eq!(v[0]["last_checkpoint_age"], 1.5);
        assert_eq!(json(&[]), "[]\n");
    }
}
