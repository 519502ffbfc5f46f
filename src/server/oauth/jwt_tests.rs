use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

use super::*;

const NOW: u64 = 1_800_000_000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

struct Signer {
    ed: Ed25519KeyPair,
    ec: EcdsaKeyPair,
}

impl Signer {
    fn new() -> Signer {
        let rng = SystemRandom::new();
        let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Signer {
            ed: Ed25519KeyPair::from_pkcs8(ed.as_ref()).unwrap(),
            ec: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, ec.as_ref(), &rng)
                .unwrap(),
        }
    }

    fn set(&self) -> KeySet {
        let point = self.ec.public_key().as_ref();
        let text = json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(self.ed.public_key().as_ref())},
            {"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256",
             "x": b64(&point[1..33]), "y": b64(&point[33..])},
        ]});
        KeySet::parse(text.to_string().as_bytes()).unwrap()
    }

    /// A token of `header` and `claims`, signed with the key its `alg` names.
    fn token(&self, header: Value, claims: Value) -> String {
        let signed = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = match header["alg"].as_str() {
            Some("ES256") => self
                .ec
                .sign(&SystemRandom::new(), signed.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            _ => self.ed.sign(signed.as_bytes()).as_ref().to_vec(),
        };
        format!("{signed}.{}", b64(&signature))
    }
}

fn expect() -> Expect {
    Expect {
        issuer: "https://idp.example".into(),
        audiences: vec!["http://127.0.0.1:8765/mcp".into()],
    }
}

fn claims() -> Value {
    json!({"iss": "https://idp.example", "sub": "alice", "aud": "http://127.0.0.1:8765/mcp",
           "exp": NOW + 300, "iat": NOW, "scope": "mcpod mcpod:admin"})
}

fn ed() -> Value {
    json!({"alg": "EdDSA", "kid": "ed", "typ": "at+jwt"})
}

fn refused(signer: &Signer, header: Value, claims: Value) -> String {
    match verify(&signer.token(header, claims), &signer.set(), &expect(), NOW) {
        Err(Refused::Invalid(why)) => why,
        other => panic!("not refused as invalid: {other:?}"),
    }
}

#[test]
fn a_good_token_gives_its_subject_and_scopes() {
    let signer = Signer::new();
    let set = signer.set();
    let got = verify(&signer.token(ed(), claims()), &set, &expect(), NOW).unwrap();
    assert_eq!(got.subject, "alice");
    assert_eq!(got.scopes, ["mcpod", "mcpod:admin"]);
    assert_eq!(got.expires, NOW + 300);
    let mut c = claims();
    c["aud"] = json!(["other", "http://127.0.0.1:8765/mcp"]);
    c["scope"] = Value::Null;
    c["scp"] = json!(["read"]);
    c["sub"] = Value::Null;
    c["client_id"] = json!("ci-client");
    let es = json!({"alg": "ES256", "kid": "ec"});
    let got = verify(&signer.token(es, c), &set, &expect(), NOW).unwrap();
    assert_eq!(
        (got.subject.as_str(), got.scopes),
        ("ci-client", vec!["read".to_string()])
    );
    let no_kid = json!({"alg": "EdDSA"});
    assert!(verify(&signer.token(no_kid, claims()), &set, &expect(), NOW).is_ok());
}

#[test]
fn algorithms_that_are_not_signatures_of_the_issuer_are_refused() {
    let signer = Signer::new();
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(claims().to_string().as_bytes())
    );
    assert!(
        matches!(verify(&none, &signer.set(), &expect(), NOW), Err(Refused::Invalid(w)) if w.contains("not accepted"))
    );
    // HS256 with the issuer's public key as the HMAC secret.
    let head = b64(br#"{"alg":"HS256","kid":"ed"}"#);
    let body = b64(claims().to_string().as_bytes());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, signer.ed.public_key().as_ref());
    let tag = ring::hmac::sign(&key, format!("{head}.{body}").as_bytes());
    let hs = format!("{head}.{body}.{}", b64(tag.as_ref()));
    assert!(
        matches!(verify(&hs, &signer.set(), &expect(), NOW), Err(Refused::Invalid(w)) if w.contains("not accepted"))
    );
    // A key of another type than the algorithm's.
    let why = refused(&signer, json!({"alg": "ES256", "kid": "ed"}), claims());
    assert!(why.contains("not one for"), "{why}");
    let why = refused(&signer, json!({"alg": "EdDSA", "kid": "ec"}), claims());
    assert!(why.contains("not one for"), "{why}");
    assert!(
        refused(
            &signer,
            json!({"alg": "EdDSA", "kid": "ed", "crit": ["exp"]}),
            claims()
        )
        .contains("crit")
    );
    assert!(refused(&signer, json!({"alg": "EdDSA", "typ": "id+jwt"}), claims()).contains("typ"));
}

#[test]
fn a_key_the_token_brings_is_never_used() {
    let issuer = Signer::new();
    let attacker = Signer::new();
    let header = json!({"alg": "EdDSA", "kid": "ed",
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64(attacker.ed.public_key().as_ref())},
        "jku": "http://attacker.example/jwks.json"});
    let forged = attacker.token(header, claims());
    let got = verify(&forged, &issuer.set(), &expect(), NOW);
    assert!(matches!(got, Err(Refused::Invalid(w)) if w.contains("does not verify")));
    let unknown = attacker.token(json!({"alg": "EdDSA", "kid": "forged"}), claims());
    assert!(matches!(
        verify(&unknown, &issuer.set(), &expect(), NOW),
        Err(Refused::UnknownKey(_))
    ));
}

#[test]
fn claims_must_name_this_issuer_and_server_and_be_in_date() {
    let s = Signer::new();
    let with = |key: &str, value: Value| {
        let mut c = claims();
        c[key] = value;
        refused(&s, ed(), c)
    };
    assert!(with("iss", json!("https://evil.example")).contains("issuer"));
    assert!(with("iss", Value::Null).contains("issuer"));
    assert!(with("aud", json!("http://127.0.0.1:9999/mcp")).contains("audience"));
    assert!(with("aud", json!([])).contains("audience"));
    assert!(with("aud", Value::Null).contains("audience"));
    assert!(with("exp", json!(NOW - LEEWAY_SECS)).contains("expired"));
    assert!(with("exp", Value::Null).contains("exp"));
    assert!(with("exp", json!("tomorrow")).contains("not valid"));
    assert!(with("nbf", json!(NOW + LEEWAY_SECS + 1)).contains("nbf"));
    assert!(with("iat", json!(NOW + 3600)).contains("iat"));
    assert!(with("sub", Value::Null).contains("sub"));
    assert!(with("sub", json!("a\nb")).contains("sub"));
    assert!(with("sub", json!("x".repeat(MAX_SUBJECT + 1))).contains("sub"));
    // Within the leeway.
    let mut c = claims();
    c["exp"] = json!(NOW - 1);
    c["nbf"] = json!(NOW + 10);
    assert!(verify(&s.token(ed(), c), &s.set(), &expect(), NOW).is_ok());
}

#[test]
fn malformed_tokens_are_refused_without_panic() {
    let s = Signer::new();
    let good = s.token(ed(), claims());
    let (signed, _) = good.rsplit_once('.').unwrap();
    let mut tampered = claims();
    tampered["sub"] = json!("mallory");
    let forged = format!(
        "{}.{}.{}",
        signed.split('.').next().unwrap(),
        b64(tampered.to_string().as_bytes()),
        good.rsplit('.').next().unwrap()
    );
    let cases = [
        forged,
        format!("{good}.x"),
        format!("{good}="),
        signed.to_string(),
        "a.b.c".into(),
        "..".into(),
        String::new(),
        "é.é.é".into(),
        "x".repeat(MAX_TOKEN + 1),
        format!("{}.{}.AA", b64(b"[]"), b64(b"{}")),
    ];
    for case in cases {
        assert!(
            matches!(
                verify(&case, &s.set(), &expect(), NOW),
                Err(Refused::Invalid(_))
            ),
            "{case:.80}"
        );
    }
}
