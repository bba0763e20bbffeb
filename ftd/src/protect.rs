//! Which settings a domain is protected with (pure): `Enable`'s options first, then
//! the domain's `<ft:protection>` annotation, then ftd's configuration. The result
//! is checked (the peer must be one ftd pairs with, the interval in range) before
//! anything changes, and gives the annotation to write back, so that the domain
//! stays marked across ftd and host restarts.

use crate::annotation::{Protection, CHECKPOINT_INTERVAL_MS};
use crate::domain::DomainSettings;
use ftd_proxy::EnableOptions;

/// This host's side of the choice: its peers and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// The peer this ftd links to (the first under `peers:`).
    pub linked_peer: String,
    /// Every peer name in the configuration.
    pub peers: Vec<String>,
    pub checkpoint_ms: u64,
    pub auto_reprotect: bool,
}

/// The outcome: what the domain task uses, and the annotation to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub settings: DomainSettings,
    /// Only what the user chose (options or an existing annotation); the rest
    /// keeps following the configuration.
    pub annotation: Protection,
}

/// Merge and check; the error names the setting and the fix.
pub fn choose(
    opts: &EnableOptions,
    annotation: Option<&Protection>,
    d: &Defaults,
) -> Result<Chosen, String> {
    let peer = opts
        .peer
        .clone()
        .or_else(|| annotation.map(|a| a.peer.clone()))
        .unwrap_or_else(|| d.linked_peer.clone());
    if !d.peers.contains(&peer) {
        return Err(format!(
            "peer {peer:?} is not one of this ftd's peers ({}): name one of them, or add \
             {peer:?} under peers: in ftd's configuration and restart ftd",
            d.peers.join(", ")
        ));
    }
    if peer != d.linked_peer {
        return Err(format!(
            "this ftd pairs with {linked:?} (the first host under peers:), not {peer:?}: \
             protect with peer {linked:?}, or move {peer:?} to the top of peers: and \
             restart ftd",
            linked = d.linked_peer
        ));
    }
    let interval = opts
        .checkpoint_interval_ms
        .or_else(|| annotation.and_then(|a| a.checkpoint_interval_ms));
    if let Some(ms) = interval {
        if !CHECKPOINT_INTERVAL_MS.contains(&ms) {
            return Err(format!(
                "checkpoint-interval {ms} ms is out of range: use {} to {} ms",
                CHECKPOINT_INTERVAL_MS.start(),
                CHECKPOINT_INTERVAL_MS.end()
            ));
        }
    }
    let auto = opts
        .auto_reprotect
        .or_else(|| annotation.and_then(|a| a.auto_reprotect));
    Ok(Chosen {
        settings: DomainSettings {
            checkpoint_ms: interval.unwrap_or(d.checkpoint_ms),
            auto_reprotect: auto.unwrap_or(d.auto_reprotect),
        },
        annotation: Protection {
            peer,
            checkpoint_interval_ms: interval,
            auto_reprotect: auto,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            linked_peer: "b".into(),
            peers: vec!["b".into(), "c".into()],
            checkpoint_ms: 2000,
            auto_reprotect: true,
        }
    }

    #[test]
    fn configuration_then_annotation_then_options() {
        let d = defaults();
        let c = choose(&EnableOptions::default(), None, &d).unwrap();
        assert_eq!(
            c.settings,
            DomainSettings {
                checkpoint_ms: 2000,
                auto_reprotect: true
            }
        );
        assert_eq!(c.annotation, Protection::new("b"));

        let a = Protection {
            peer: "b".into(),
            checkpoint_interval_ms: Some(500),
            auto_reprotect: Some(false),
        };
        let c = choose(&EnableOptions::default(), Some(&a), &d).unwrap();
        assert_eq!(c.settings.checkpoint_ms, 500);
        assert!(!c.settings.auto_reprotect);
        assert_eq!(c.annotation, a);

        let o = EnableOptions {
            checkpoint_interval_ms: Some(1000),
            ..Default::default()
        };
        let c = choose(&o, Some(&a), &d).unwrap();
        assert_eq!(c.settings.checkpoint_ms, 1000);
        assert!(!c.settings.auto_reprotect, "the annotation still counts");
        assert_eq!(c.annotation.checkpoint_interval_ms, Some(1000));
    }

    #[test]
    fn unknown_or_unlinked_peers_and_bad_intervals_are_refused() {
        let d = defaults();
        let o = |peer: &str| EnableOptions {
            peer: Some(peer.into()),
            ..Default::default()
        };
        let e = choose(&o("x"), None, &d).unwrap_err();
        assert!(
            e.contains("\"x\" is not one of this ftd's peers (b, c)"),
            "{e}"
        );
        let e = choose(&o("c"), None, &d).unwrap_err();
        assert!(e.contains("pairs with \"b\""), "{e}");
        for ms in [0, 99, 60_001] {
            let e = choose(
                &EnableOptions {
                    checkpoint_interval_ms: Some(ms),
                    ..Default::default()
                },
                None,
                &d,
            )
            .unwrap_err();
            assert!(e.contains("out of range: use 100 to 60000 ms"), "{e}");
        }
        // An annotation naming an unknown peer is refused the same way.
        let e = choose(&EnableOptions::default(), Some(&Protection::new("zz")), &d).unwrap_err();
        assert!(e.contains("\"zz\""), "{e}");
    }
}
