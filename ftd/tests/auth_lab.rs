//! Who may call ftd, end to end on lab hosts with their real system bus (ftd's
//! real bus policy), a real polkitd (ftd's real actions) and ftd.
//!
//! The unprivileged caller is uid 65534 (nobody): `dbus-send` started inside the
//! host by `setpriv`, which drops to that uid before dbus-send connects to the
//! bus. The test process itself calls as root.

mod common;

use common::callers::*;
use common::*;
use ftvirt_lab::{wait_until, GuestSpec, Lab, LabConfig, Look};
use std::time::{Duration, Instant};

/// The whole story on a protected pair: nobody may read but not change, before
/// and during protection; root may change; nothing nobody asks for happens.
#[tokio::test(flavor = "multi_thread")]
async fn an_unprivileged_user_may_look_but_not_change() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a", "b"])) else {
        return;
    };
    lab.boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    {
        let h = lab.host_mut("a").unwrap();
        h.start_dbus().expect("system bus");
        h.start_polkit().expect("polkitd");
    }
    let yaml = {
        let (a, b) = (lab.host("a").unwrap(), lab.host("b").unwrap());
        ftd_yaml(a, b, 2000)
    };
    lab.host_mut("a")
        .unwrap()
        .start_ftd(
            std::path::Path::new(env!("CARGO_BIN_EXE_ftd")),
            &yaml,
            BUS_NAME,
        )
        .expect("ftd on a");
    start_ftd(&mut lab, "b", "a");
    eprintln!(
        "lab, guest, polkitd and both ftd up in {:.1?}",
        t0.elapsed()
    );

    // Reading is for anyone (org.ftvirt.ftd1.monitor: yes).
    let st = call_as(&lab, "a", NOBODY, "Status", &["string:g"]).expect("nobody may read Status");
    assert!(st.contains("\"unprotected\""), "{st}");
    // (ftd lists the domains it protects or protected: none yet.)
    call_as(&lab, "a", NOBODY, "List", &[]).expect("nobody may List");

    // Changing is not, and nothing changes.
    let changes: [(&str, &[&str]); 4] = [
        ("Enable", &["string:g"]),
        ("Disable", &["string:g"]),
        ("Failover", &["string:g"]),
        ("Notify", &["string:g", "string:started"]),
    ];
    for (m, args) in changes {
        let e = call_as(&lab, "a", NOBODY, m, args).unwrap_err();
        assert_denied(&e, MANAGE, NOBODY);
        assert!(e.1.contains("nothing was changed"), "{e:?}");
    }
    let sa = client(&lab, "a").await.status("g").await.unwrap();
    assert_eq!(
        (sa.state.as_str(), sa.wanted),
        ("unprotected", false),
        "{sa:?}"
    );
    let on_b = lab.host("b").unwrap().domains(true).unwrap();
    assert!(on_b.is_empty(), "a secondary appeared on b: {on_b:?}");

    // Root may: the test process calls as root.
    let t = Instant::now();
    let first = client(&lab, "a")
        .await
        .enable("g", ftd_proxy::no_options())
        .await
        .expect("root may Enable");
    assert_eq!(first, "preparing");
    wait_state(&lab, "a", "g", "protected", Duration::from_secs(120)).await;
    wait_state(&lab, "b", "g", "secondary", Duration::from_secs(30)).await;
    eprintln!("protected by root's Enable in {:.1?}", t.elapsed());

    // During protection nobody still may not disable or fail over.
    for (m, args) in &changes[1..3] {
        let e = call_as(&lab, "a", NOBODY, m, args).unwrap_err();
        assert_denied(&e, MANAGE, NOBODY);
    }
    let sa = client(&lab, "a").await.status("g").await.unwrap();
    let sb = client(&lab, "b").await.status("g").await.unwrap();
    assert_eq!(
        (sa.state.as_str(), sa.wanted),
        ("protected", true),
        "{sa:?}"
    );
    assert_eq!(sb.state, "secondary", "{sb:?}");
    // The guest runs: a checkpoint pauses it for a moment, so "paused" is
    // looked at again.
    wait_until(
        "the protected guest on a to run",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let st = lab.host("a").unwrap().virsh(&["domstate", "g"]).unwrap();
            match st.trim() {
                "running" => Look::Ready(()),
                "paused" => Look::Seen("paused".into()),
                other => Look::Failed(format!("it is {other}")),
            }
        },
    )
    .unwrap();
    let st = call_as(&lab, "a", NOBODY, "Status", &["string:g"]).expect("nobody may read Status");
    assert!(st.contains("\"protected\""), "{st}");
    let list = call_as(&lab, "a", NOBODY, "List", &[]).expect("nobody may List");
    assert!(list.contains("\"g\""), "{list}");

    // The refusals are in ftd's log, with the caller and the action.
    let log = ftd_log(&lab, "a");
    assert!(
        log.lines()
            .any(|l| l.contains("refused") && l.contains(MANAGE) && l.contains("uid 65534")),
        "no refusal logged:\n{log}"
    );

    let t = Instant::now();
    client(&lab, "a")
        .await
        .disable("g")
        .await
        .expect("root may Disable");
    wait_state(&lab, "a", "g", "unprotected", Duration::from_secs(60)).await;
    eprintln!("disabled by root in {:.1?}", t.elapsed());
    lab.shutdown().unwrap();
    eprintln!("whole test {:.1?}", t0.elapsed());
}

/// polkit really decides: its view of ftd's actions is the policy file, and a
/// rule in the host's rules directory changes the answer for uid 65534 either way.
#[tokio::test(flavor = "multi_thread")]
async fn polkit_rules_decide_for_an_unprivileged_user() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a"])) else {
        return;
    };
    start_lone_ftd(&mut lab, true);

    // polkitd loaded ftd's actions from the host's own actions directory.
    let pk = lab
        .host("a")
        .unwrap()
        .exec(&["pkaction", "--verbose", "--action-id", MANAGE])
        .expect("pkaction knows org.ftvirt.ftd1.manage");
    for want in [
        "implicit any:      auth_admin\n",
        "implicit inactive: auth_admin\n",
        "implicit active:   auth_admin_keep\n",
    ] {
        assert!(pk.contains(want), "{want:?} not in:\n{pk}");
    }

    // Without a rule: nobody has no session, so polkit wants an administrator.
    for m in ["Enable", "Disable", "Failover"] {
        let e = call_as(&lab, "a", NOBODY, m, &["string:nosuch"]).unwrap_err();
        assert_denied(&e, MANAGE, NOBODY);
        assert!(e.1.contains("administrator's authentication"), "{e:?}");
    }

    // A rule grants nobody org.ftvirt.ftd1.manage: the same calls now get past
    // authorization to ftd's own answer (there is no such domain).
    let h = lab.host("a").unwrap();
    h.add_polkit_rule(
        "10-ftvirt-test-manage",
        "polkit.addRule(function(action, subject) {\n\
         \x20   if (action.id == \"org.ftvirt.ftd1.manage\" && subject.user == \"nobody\")\n\
         \x20       return polkit.Result.YES;\n\
         });\n",
    )
    .expect("rule loaded");
    for m in ["Enable", "Disable", "Failover"] {
        let e = call_as(&lab, "a", NOBODY, m, &["string:nosuch"]).unwrap_err();
        assert_eq!(
            e.0, NO_SUCH_DOMAIN,
            "{m} was not authorized by the rule: {e:?}"
        );
    }

    // Reading goes through polkit too: a rule can take it away.
    assert!(call_as(&lab, "a", NOBODY, "List", &[]).is_ok());
    h.add_polkit_rule(
        "10-ftvirt-test-monitor",
        "polkit.addRule(function(action, subject) {\n\
         \x20   if (action.id == \"org.ftvirt.ftd1.monitor\" && subject.user == \"nobody\")\n\
         \x20       return polkit.Result.NO;\n\
         });\n",
    )
    .expect("rule loaded");
    for (m, args) in [("List", &[][..]), ("Status", &["string:nosuch"][..])] {
        let e = call_as(&lab, "a", NOBODY, m, args).unwrap_err();
        assert_denied(&e, MONITOR, NOBODY);
        assert!(e.1.contains("Ask the administrator"), "{e:?}");
    }
    // Root is not asked about: still allowed.
    client(&lab, "a").await.list().await.expect("root may List");
    let e = client(&lab, "a")
        .await
        .enable("nosuch", ftd_proxy::no_options())
        .await
        .unwrap_err();
    assert!(e.to_string().contains(NO_SUCH_DOMAIN), "{e}");
    lab.shutdown().unwrap();
    eprintln!("whole test {:.1?}", t0.elapsed());
}

/// Fail closed: with polkitd not running, nobody's calls are refused with a
/// message that says why (and so does ftd's log); root is still allowed; once
/// polkitd runs, ftd asks it without being restarted.
#[tokio::test(flavor = "multi_thread")]
async fn without_polkit_changes_are_refused() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a"])) else {
        return;
    };
    start_lone_ftd(&mut lab, false);
    assert!(
        ftd_log(&lab, "a").contains("neither running nor activatable"),
        "ftd did not warn at start-up:\n{}",
        ftd_log(&lab, "a")
    );

    let unavailable = |e: &BusError| {
        assert!(
            e.1.contains("polkit (org.freedesktop.PolicyKit1) is not running"),
            "{e:?}"
        );
        assert!(e.1.contains("Start polkit"), "{e:?}");
    };
    let e = call_as(&lab, "a", NOBODY, "Enable", &["string:nosuch"]).unwrap_err();
    assert_denied(&e, MANAGE, NOBODY);
    unavailable(&e);
    assert!(e.1.contains("nothing was changed"), "{e:?}");
    let e = call_as(&lab, "a", NOBODY, "List", &[]).unwrap_err();
    assert_denied(&e, MONITOR, NOBODY);
    unavailable(&e);
    let log = ftd_log(&lab, "a");
    assert!(
        log.lines().any(|l| l.contains("ERROR")
            && l.contains("polkit unavailable (fail closed)")
            && l.contains(MANAGE)),
        "the refusal is not logged as an error:\n{log}"
    );
    // Root needs no polkit.
    let e = client(&lab, "a")
        .await
        .enable("nosuch", ftd_proxy::no_options())
        .await
        .unwrap_err();
    assert!(e.to_string().contains(NO_SUCH_DOMAIN), "{e}");

    // polkitd starts: nobody may read again (no ftd restart).
    lab.host_mut("a").unwrap().start_polkit().expect("polkitd");
    call_as(&lab, "a", NOBODY, "List", &[]).expect("nobody may List once polkit runs");
    let e = call_as(&lab, "a", NOBODY, "Enable", &["string:nosuch"]).unwrap_err();
    assert_denied(&e, MANAGE, NOBODY);
    assert!(!e.1.contains("not running"), "{e:?}");

    // ... and stops: refused again.
    lab.host_mut("a")
        .unwrap()
        .stop_polkit()
        .expect("polkitd stopped");
    let e = call_as(&lab, "a", NOBODY, "List", &[]).unwrap_err();
    unavailable(&e);
    lab.shutdown().unwrap();
    eprintln!("whole test {:.1?}", t0.elapsed());
}

/// The bus policy (dbus/org.ftvirt.Ftd1.conf on the lab's system bus): only root
/// may own ftd's name; anyone may send to ftd, standard interfaces included.
#[tokio::test(flavor = "multi_thread")]
async fn only_root_may_own_ftds_name() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::for_test(LabConfig::hosts(&["a"])) else {
        return;
    };
    lab.host("a").unwrap().start_dbus().expect("system bus");
    let request = |lab: &Lab, uid| {
        send_as(
            lab,
            "a",
            uid,
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.RequestName",
            &[&format!("string:{BUS_NAME}"), "uint32:0"],
        )
    };
    let e = request(&lab, NOBODY).unwrap_err();
    assert_eq!(e.0, "org.freedesktop.DBus.Error.AccessDenied", "{e:?}");
    assert!(e.1.contains(BUS_NAME), "{e:?}");
    // Root may (1: primary owner; dbus-send exits and the name is free again).
    let ok = request(&lab, 0).expect("root may own the name");
    assert!(ok.contains("uint32 1"), "{ok}");

    let yaml = lone_yaml(&lab);
    lab.host_mut("a")
        .unwrap()
        .start_ftd(
            std::path::Path::new(env!("CARGO_BIN_EXE_ftd")),
            &yaml,
            BUS_NAME,
        )
        .expect("ftd");
    // Taken: nobody cannot take it over either.
    let e = request(&lab, NOBODY).unwrap_err();
    assert_eq!(e.0, "org.freedesktop.DBus.Error.AccessDenied", "{e:?}");

    // Anyone may send to ftd: the standard interfaces answer nobody.
    let path = "/org/ftvirt/Ftd1";
    let xml = send_as(
        &lab,
        "a",
        NOBODY,
        BUS_NAME,
        path,
        "org.freedesktop.DBus.Introspectable.Introspect",
        &[],
    )
    .expect("nobody may introspect ftd");
    assert!(xml.contains("org.ftvirt.Ftd1.Manager"), "{xml}");
    send_as(
        &lab,
        "a",
        NOBODY,
        BUS_NAME,
        path,
        "org.freedesktop.DBus.Peer.Ping",
        &[],
    )
    .expect("nobody may ping ftd");
    send_as(
        &lab,
        "a",
        NOBODY,
        BUS_NAME,
        path,
        "org.freedesktop.DBus.Properties.GetAll",
        &["string:org.ftvirt.Ftd1.Manager"],
    )
    .expect("nobody may read ftd's properties");
    // ... and reaches ftd's own authorization (no polkit here: refused by ftd, not the bus).
    let e = call_as(&lab, "a", NOBODY, "Enable", &["string:nosuch"]).unwrap_err();
    assert_denied(&e, MANAGE, NOBODY);
    lab.shutdown().unwrap();
    eprintln!("whole test {:.1?}", t0.elapsed());
}
