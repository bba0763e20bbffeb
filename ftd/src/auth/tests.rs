use super::*;
use crate::api::ApiError;
use std::path::Path;
use zbus::DBusError;

fn repo_file(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn nobody() -> Caller {
    Caller {
        name: ":1.7".into(),
        uid: 65534,
    }
}

fn method_error(name: &str, text: &str) -> zbus::Error {
    // A reply message is needed to build the error; any will do.
    let msg = zbus::Message::method_call("/", "M")
        .unwrap()
        .build(&())
        .unwrap();
    zbus::Error::MethodError(
        zbus::names::OwnedErrorName::try_from(name).unwrap(),
        Some(text.into()),
        msg,
    )
}

#[test]
fn polkit_yes_allows() {
    let yes = Answer {
        is_authorized: true,
        is_challenge: false,
    };
    for action in Action::ALL {
        assert_eq!(decide(&nobody(), action, Ok(yes)), Ok(()));
    }
}

#[test]
fn polkit_no_refuses_naming_the_caller_and_the_action() {
    let no = Answer {
        is_authorized: false,
        is_challenge: false,
    };
    let e = decide(&nobody(), Action::Manage, Ok(no)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "uid 65534 (bus name :1.7) is not authorized to manage fault tolerance (enable, \
         disable, fail over) (polkit action org.ftvirt.ftd1.manage); nothing was changed. \
         Ask the administrator for a polkit rule that grants this action"
    );
    let e = decide(&nobody(), Action::Monitor, Ok(no)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "uid 65534 (bus name :1.7) is not authorized to view fault tolerance status \
         (polkit action org.ftvirt.ftd1.monitor). Ask the administrator for a polkit rule \
         that grants this action"
    );
}

#[test]
fn a_challenge_says_how_to_authenticate() {
    let challenge = Answer {
        is_authorized: false,
        is_challenge: true,
    };
    let e = decide(&nobody(), Action::Manage, Ok(challenge)).unwrap_err();
    assert!(
        matches!(
            e,
            AuthError::NotAuthorized {
                challenge: true,
                ..
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("org.ftvirt.ftd1.manage"), "{text}");
    assert!(
        text.contains("requires an administrator's authentication"),
        "{text}"
    );
    assert!(text.contains("call as root"), "{text}");
}

#[test]
fn polkit_unreachable_refuses_and_says_so() {
    for name in [
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
    ] {
        let e = decide(
            &nobody(),
            Action::Manage,
            Err(method_error(name, "The name is not activatable")),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot ask polkit whether uid 65534 (bus name :1.7) may manage fault tolerance \
             (enable, disable, fail over) (polkit action org.ftvirt.ftd1.manage): polkit \
             (org.freedesktop.PolicyKit1) is not running on the system bus; refused; nothing \
             was changed. Start polkit (systemctl start polkit), or call as root",
            "{name}"
        );
    }
    let e = decide(
        &nobody(),
        Action::Monitor,
        Err(zbus::Error::Failure("no answer within 10 s".into())),
    )
    .unwrap_err();
    assert!(matches!(e, AuthError::PolkitUnavailable { .. }), "{e:?}");
    assert!(e.to_string().contains("no answer within 10 s"), "{e}");
}

#[test]
fn an_action_polkit_does_not_know_points_at_the_policy_file() {
    let e = decide(
        &nobody(),
        Action::Manage,
        Err(method_error(
            "org.freedesktop.PolicyKit1.Error.Failed",
            "Action org.ftvirt.ftd1.manage is not registered",
        )),
    )
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("polkit does not know the action org.ftvirt.ftd1.manage"),
        "{text}"
    );
    assert!(
        text.ends_with("Install org.ftvirt.ftd1.policy in /usr/share/polkit-1/actions/"),
        "{text}"
    );
}

#[test]
fn refusals_are_access_denied_on_the_bus() {
    let e: ApiError = decide(
        &nobody(),
        Action::Manage,
        Ok(Answer {
            is_authorized: false,
            is_challenge: false,
        }),
    )
    .unwrap_err()
    .into();
    assert_eq!(e.name().as_str(), "org.ftvirt.Ftd1.Error.AccessDenied");
    assert!(e.description().unwrap().contains("org.ftvirt.ftd1.manage"));
    assert_eq!(
        ftd_proxy::ERROR_ACCESS_DENIED,
        "org.ftvirt.Ftd1.Error.AccessDenied"
    );
}

/// The actions of `polkit/org.ftvirt.ftd1.policy`: (id, (any, inactive, active)).
fn policy_actions() -> Vec<(String, [String; 3], String, String)> {
    let text = repo_file("polkit/org.ftvirt.ftd1.policy");
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, opts).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "policyconfig");
    let child = |n: roxmltree::Node, tag: &str| -> String {
        n.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .unwrap_or_else(|| panic!("no <{tag}> in {n:?}"))
            .trim()
            .to_string()
    };
    root.children()
        .filter(|n| n.has_tag_name("action"))
        .map(|a| {
            let d = a
                .children()
                .find(|c| c.has_tag_name("defaults"))
                .expect("<defaults>");
            (
                a.attribute("id").expect("id").to_string(),
                [
                    child(d, "allow_any"),
                    child(d, "allow_inactive"),
                    child(d, "allow_active"),
                ],
                child(a, "description"),
                child(a, "message"),
            )
        })
        .collect()
}

#[test]
fn the_policy_file_declares_exactly_our_actions() {
    let actions = policy_actions();
    let ids: Vec<&str> = actions.iter().map(|a| a.0.as_str()).collect();
    assert_eq!(ids, Action::ALL.map(Action::id));
    for (id, defaults, description, message) in &actions {
        let want = match id.as_str() {
            "org.ftvirt.ftd1.manage" => ["auth_admin", "auth_admin", "auth_admin_keep"],
            _ => ["yes", "yes", "yes"],
        };
        assert_eq!(defaults, &want, "{id}");
        assert!(description.len() > 20 && message.len() > 20, "{id}");
    }
}

#[test]
fn the_bus_files_agree_with_ftd() {
    use crate::config::DEFAULT_BUS_NAME;
    assert_eq!(DEFAULT_BUS_NAME, ftd_proxy::BUS_NAME);
    let conf = repo_file("dbus/org.ftvirt.Ftd1.conf");
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&conf, opts).expect("well-formed XML");
    let rules: Vec<(String, String, String, String)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("policy"))
        .flat_map(|p| {
            let ctx = p
                .attribute("user")
                .map(|u| format!("user={u}"))
                .or(p.attribute("context").map(|c| format!("context={c}")))
                .unwrap_or_default();
            p.children()
                .filter(|r| r.is_element())
                .flat_map(move |r| {
                    let ctx = ctx.clone();
                    r.attributes().map(move |a| {
                        (
                            ctx.clone(),
                            r.tag_name().name().to_string(),
                            a.name().to_string(),
                            a.value().to_string(),
                        )
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let has = |ctx: &str, verb: &str, attr: &str| {
        rules.contains(&(
            ctx.to_string(),
            verb.to_string(),
            attr.to_string(),
            DEFAULT_BUS_NAME.to_string(),
        ))
    };
    assert!(has("user=root", "allow", "own"), "{rules:?}");
    assert!(has("context=default", "deny", "own"), "{rules:?}");
    assert!(
        has("context=default", "allow", "send_destination"),
        "{rules:?}"
    );
    // Nobody but root is given the name.
    assert!(
        !rules
            .iter()
            .any(|(ctx, verb, attr, _)| ctx != "user=root" && verb == "allow" && attr == "own"),
        "{rules:?}"
    );

    let key = |text: &str, k: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}="))
            .trim()
            .to_string()
    };
    let activation = repo_file("dbus/org.ftvirt.Ftd1.service");
    let unit = repo_file("dbus/ftd.service");
    assert_eq!(key(&activation, "Name"), DEFAULT_BUS_NAME);
    assert_eq!(key(&activation, "User"), "root");
    assert_eq!(key(&activation, "SystemdService"), "ftd.service");
    assert_eq!(key(&unit, "Type"), "dbus");
    assert_eq!(key(&unit, "BusName"), DEFAULT_BUS_NAME);
    let exec = format!("/usr/sbin/ftd --config {}", crate::config::DEFAULT_PATH);
    assert_eq!(key(&unit, "ExecStart"), exec);
    assert_eq!(key(&activation, "Exec"), exec);
}
