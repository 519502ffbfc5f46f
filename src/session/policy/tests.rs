use super::*;

fn p(s: &str) -> Pattern {
    Pattern::parse(s).expect(s)
}

fn policy(grants: &[&str]) -> Policy {
    Policy {
        allow_egress: grants.iter().map(|g| p(g)).collect(),
        ..Policy::default()
    }
}

fn ask() -> Ask {
    Ask {
        mounts: vec![],
        network: None,
        ttl_secs: None,
        memory_mb: None,
        cpus: None,
        pids: None,
        egress: vec![],
        forwards: BTreeMap::new(),
        writable_paths: vec![],
    }
}

#[test]
fn a_label_gets_what_the_grant_covers_and_a_warning_for_the_rest() {
    let label = Requests {
        egress: vec![p("api.github.com:443"), p("evil.example:443")],
        forwards: BTreeMap::from([(5432, p("db.internal:5432"))]),
        ..Requests::default()
    };
    let policy = policy(&["*.github.com:443", "db.internal:5432"]);
    let isolation = policy
        .grant(&ask(), Some(&label), "u".into())
        .expect("grant");
    assert_eq!(isolation.network, "none");
    assert_eq!(
        isolation.egress,
        vec![p("api.github.com:443"), p("db.internal:5432")]
    );
    assert_eq!(
        isolation.forwards,
        BTreeMap::from([(5432, p("db.internal:5432"))])
    );
    assert!(isolation.egress_proxy.is_some());
    assert!(
        isolation
            .warnings
            .iter()
            .any(|w| w.contains("evil.example:443")),
        "{:?}",
        isolation.warnings
    );
}

#[test]
fn a_launch_replaces_the_label_and_is_refused_beyond_the_grant() {
    let label = Requests {
        egress: vec![p("api.github.com:443")],
        ..Requests::default()
    };
    let policy = policy(&["*.github.com:443"]);
    let mut a = ask();
    a.egress = vec![p("uploads.github.com:443")];
    let isolation = policy.grant(&a, Some(&label), "u".into()).expect("grant");
    assert_eq!(isolation.egress, vec![p("uploads.github.com:443")]);
    a.egress = vec![p("github.com:443")];
    let refused = policy
        .grant(&a, Some(&label), "u".into())
        .expect_err("apex");
    assert!(refused.to_string().contains("github.com:443"), "{refused}");
}

#[test]
fn no_grant_means_no_egress_and_the_whole_network_means_no_gate() {
    let label = Requests {
        egress: vec![p("api.github.com:443")],
        ..Requests::default()
    };
    let isolation = Policy::default()
        .grant(&ask(), Some(&label), "u".into())
        .expect("grant");
    assert!(isolation.egress.is_empty() && isolation.egress_proxy.is_none());
    let open = Policy {
        allow_network: true,
        ..policy(&["*.github.com:443"])
    };
    let mut a = ask();
    a.network = Some(Network::Egress);
    let isolation = open.grant(&a, Some(&label), "u".into()).expect("grant");
    assert_eq!(isolation.network, "egress");
    assert!(isolation.egress.is_empty(), "a gate on the whole network");
}
