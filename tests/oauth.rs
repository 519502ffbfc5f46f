//! `mcpod serve --listen` as an OAuth 2.1 resource server, against a real
//! authorization server over HTTPS (tests/interop/oauth_issuer.py: PyJWT and
//! `cryptography`, with its own CA) and the Python SDK's OAuth client, which
//! finds the issuer through mcpod's RFC 9728 metadata by itself.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use common::http::{Serve, interop, python, status};
use serde_json::{Value, json};

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

/// The test's authorization server.
struct Issuer {
    child: Child,
    url: String,
    ca: String,
    control: u16,
    _dir: tempfile::TempDir,
}

impl Issuer {
    fn start() -> Issuer {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(python())
            .arg(interop().join("oauth_issuer.py"))
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the issuer starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let said: Value = serde_json::from_str(&line).expect("the issuer's JSON line");
        Issuer {
            child,
            url: said["issuer"].as_str().unwrap().to_string(),
            ca: said["ca"].as_str().unwrap().to_string(),
            control: said["control"].as_u64().unwrap() as u16,
            _dir: dir,
        }
    }

    /// mcpod's flags for this issuer.
    fn flags(&self) -> Vec<String> {
        [
            "--oauth-issuer",
            &self.url,
            "--oauth-ca",
            &self.ca,
            "--oauth-scope",
            "mcpod",
            "--oauth-admin-scope",
            "mcpod:admin",
        ]
        .map(str::to_string)
        .to_vec()
    }

    fn control(&self, method: &str, path: &str, body: &str) -> Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.control)).unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        serde_json::from_str(body).unwrap()
    }

    /// A token of `claims` (over good defaults for `serve`), signed as asked.
    fn mint(&self, serve: &Serve, claims: Value, alg: &str, kid: &str, header: Value) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut all = json!({"iss": self.url, "sub": "minted", "aud": serve.url(),
                             "exp": now + 300, "iat": now, "scope": "mcpod"});
        for (k, v) in claims.as_object().unwrap() {
            all[k] = v.clone();
        }
        let ask = json!({"claims": all, "alg": alg, "kid": kid, "header": header});
        self.control("POST", "/mint", &ask.to_string())["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn jwks_fetches(&self) -> u64 {
        self.control("GET", "/stats", "")["jwks_fetches"]
            .as_u64()
            .unwrap()
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(issuer: &Issuer) -> Serve {
    let flags = issuer.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Serve::start_with(&flags)
}

/// The SDK's client_credentials client as `client`.
fn client(serve: &Serve, issuer: &Issuer, client: &str, step: &str, arg: Option<&str>) -> Value {
    let env = [
        ("MCPOD_OAUTH_CLIENT", client),
        ("MCPOD_OAUTH_ISSUER", issuer.url.as_str()),
        ("SSL_CERT_FILE", issuer.ca.as_str()),
    ];
    serve.client_with("-", step, arg, &env)
}

#[test]
fn a_client_finds_the_issuer_gets_a_token_and_owns_what_it_launches() {
    let hello = common::hello_image();
    let issuer = Issuer::start();
    let serve = start(&issuer);

    // RFC 9728: the metadata names the resource and its issuer.
    let answer = serve.get("/.well-known/oauth-protected-resource/mcp", &serve.host());
    assert_eq!(status(&answer), "HTTP/1.1 200 OK", "{answer}");
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    let metadata: Value = serde_json::from_str(body).unwrap();
    assert_eq!(metadata["resource"], serve.url());
    assert_eq!(metadata["authorization_servers"], json!([issuer.url]));
    let answer = serve.get(
        "/.well-known/oauth-protected-resource/mcp",
        "host: evil.example\r\n",
    );
    assert!(status(&answer).contains("403"), "{answer}");

    // A 401 names the metadata.
    let answer = serve.raw(&serve.host(), INIT);
    assert!(status(&answer).contains("401"), "{answer}");
    assert!(
        answer.contains(&format!(
            "resource_metadata=\"http://127.0.0.1:{}/.well-known/oauth-protected-resource/mcp\"",
            serve.port
        )),
        "{answer}"
    );

    // The SDK's OAuth client: 401, metadata, the issuer's metadata, a
    // token for this resource, then MCP.
    let a = client(&serve, &issuer, "agent-1:secret-1", "launch", Some(&hello));
    assert_eq!(a["greet"], "Hello, http!", "{a}");
    let session = a["session"].as_str().unwrap().to_string();
    assert_eq!(a["owners"], json!(["oauth:agent-1"]), "{a}");

    // Another client of the same issuer sees none of it, and may not read
    // the audit log.
    let b = client(&serve, &issuer, "agent-2:secret-2", "audit", Some("{}"));
    assert_eq!(b["sessions"], json!([]), "{b}");
    assert_eq!(b["audit"]["isError"], true, "{b}");
    assert!(
        b["audit"]["text"].as_str().unwrap().contains("admins"),
        "{b}"
    );
    let b = client(&serve, &issuer, "agent-2:secret-2", "stop", Some(&session));
    assert_eq!(b["stop"]["isError"], true, "{b}");

    // A token-file user's session too, then the admin sees both with
    // their owners, reads who did what, and stops agent-1's session.
    let carol = serve.create("carol");
    let c = serve.client(&carol, "launch", Some(&hello));
    let carols = c["session"].as_str().unwrap().to_string();
    let filter = json!({"principal": "oauth:agent-1", "tool": "launch_session"}).to_string();
    let admin = client(&serve, &issuer, "ops:secret-ops", "audit", Some(&filter));
    let mut owners: Vec<String> = serde_json::from_value(admin["owners"].clone()).unwrap();
    owners.sort();
    assert_eq!(owners, ["carol", "oauth:agent-1"], "{admin}");
    let records = admin["audit"]["records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{admin}");
    assert_eq!(records[0]["session"], session.as_str());
    assert!(
        !admin["audit"].to_string().contains("Hello"),
        "no values in the audit"
    );
    let admin = client(&serve, &issuer, "ops:secret-ops", "stop", Some(&session));
    assert_eq!(admin["stop"]["stopped"], true, "{admin}");
    assert_eq!(admin["sessions"], json!([carols]), "{admin}");

    // An admin's own token of the token file works the same way.
    let (ok, root) = serve.token(&["create", "root", "--admin"]);
    assert!(ok);
    let r = serve.client(&root, "stop", Some(&carols));
    assert_eq!(r["stop"]["stopped"], true, "{r}");
    assert!(serve.stop().success());
    for s in [&session, &carols] {
        assert_eq!(common::containers_of(s), Vec::<String>::new());
    }
}

#[test]
fn hostile_access_tokens_are_refused_and_start_nothing() {
    let issuer = Issuer::start();
    let serve = start(&issuer);
    let none = json!({});
    let hour_ago = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            issuer.mint(
                &serve,
                json!({"exp": hour_ago}),
                "RS256",
                "rsa-1",
                none.clone(),
            ),
            "expired",
        ),
        (
            "another audience",
            issuer.mint(
                &serve,
                json!({"aud": "http://127.0.0.1:1/mcp"}),
                "RS256",
                "rsa-1",
                none.clone(),
            ),
            "audience",
        ),
        (
            "another issuer",
            issuer.mint(
                &serve,
                json!({"iss": "https://evil.example"}),
                "RS256",
                "rsa-1",
                none.clone(),
            ),
            "issuer",
        ),
        (
            "alg none",
            issuer.mint(&serve, json!({}), "none", "rsa-1", none.clone()),
            "not accepted",
        ),
        (
            "HS256 keyed with the public key",
            issuer.mint(&serve, json!({}), "HS256", "rsa-1", none.clone()),
            "not accepted",
        ),
        (
            "a key not in the set, under the set's kid",
            issuer.mint(&serve, json!({}), "rogue", "rsa-1", none.clone()),
            "does not verify",
        ),
        (
            "a forged kid",
            issuer.mint(&serve, json!({}), "rogue", "forged", none.clone()),
            "no key",
        ),
        (
            "a jku of the attacker's",
            issuer.mint(
                &serve,
                json!({}),
                "rogue",
                "forged",
                json!({"jku": "http://127.0.0.1:9/jwks"}),
            ),
            "no key",
        ),
        (
            "an EC kid with RS256",
            issuer.mint(&serve, json!({}), "RS256", "ec-1", none.clone()),
            "not one for",
        ),
        (
            "no exp",
            issuer.mint(&serve, json!({"exp": null}), "RS256", "rsa-1", none.clone()),
            "exp",
        ),
        (
            "a future nbf",
            issuer.mint(
                &serve,
                json!({"nbf": hour_ago + 7200}),
                "RS256",
                "rsa-1",
                none.clone(),
            ),
            "nbf",
        ),
        ("garbage", "eyJ.eyJ.x".to_string(), "base64url"),
    ];
    for (what, token, why) in &cases {
        let answer = serve.raw(
            &format!("{}authorization: Bearer {token}\r\n", serve.host()),
            INIT,
        );
        assert!(status(&answer).contains("401"), "{what}: {answer}");
        assert!(
            answer.contains("error=\"invalid_token\""),
            "{what}: {answer}"
        );
        assert!(answer.contains("resource_metadata="), "{what}: {answer}");
        assert!(answer.contains(why), "{what}: wanted {why:?} in {answer}");
        assert!(
            !answer.to_ascii_lowercase().contains("mcp-session-id"),
            "{what}"
        );
    }
    // Good token, no scope: 403 insufficient_scope, naming the scope.
    let scopeless = issuer.mint(
        &serve,
        json!({"scope": "other"}),
        "ES256",
        "ec-1",
        none.clone(),
    );
    let answer = serve.raw(
        &format!("{}authorization: Bearer {scopeless}\r\n", serve.host()),
        INIT,
    );
    assert!(status(&answer).contains("403"), "{answer}");
    assert!(answer.contains("error=\"insufficient_scope\""), "{answer}");
    // A flood of made-up key ids costs at most one fetch of the set.
    let before = issuer.jwks_fetches();
    for i in 0..40 {
        let token = issuer.mint(
            &serve,
            json!({}),
            "rogue",
            &format!("made-up-{i}"),
            none.clone(),
        );
        let answer = serve.raw(
            &format!("{}authorization: Bearer {token}\r\n", serve.host()),
            INIT,
        );
        assert!(status(&answer).contains("401"), "{answer}");
    }
    let fetched = issuer.jwks_fetches() - before;
    assert!(
        fetched <= 1,
        "{fetched} fetches of the key set for 40 unknown kids"
    );
    // Both of the issuer's keys are good, and a good token opens a session.
    for (alg, kid) in [("RS256", "rsa-1"), ("ES256", "ec-1")] {
        let token = issuer.mint(&serve, json!({}), alg, kid, none.clone());
        let answer = serve.raw(
            &format!("{}authorization: Bearer {token}\r\n", serve.host()),
            INIT,
        );
        assert_eq!(status(&answer), "HTTP/1.1 200 OK", "{alg}: {answer}");
    }
    assert!(serve.stop().success());
}

#[test]
fn an_issuer_that_cannot_be_reached_is_503_and_mcpods_own_tokens_still_work() {
    // A port nothing listens on: the key set cannot be had.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let issuer = format!("https://127.0.0.1:{port}");
    let serve = Serve::start_with(&["--oauth-issuer", &issuer]);
    let answer = serve.raw(
        &format!("{}authorization: Bearer a.b.c\r\n", serve.host()),
        INIT,
    );
    assert!(status(&answer).contains("503"), "{answer}");
    let token = serve.create("dave");
    let answer = serve.raw(
        &format!("{}authorization: Bearer {token}\r\n", serve.host()),
        INIT,
    );
    assert_eq!(status(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert!(serve.stop().success());
    // A bad issuer URL stops serve before it listens, naming the flag.
    let out = Command::new(env!("CARGO_BIN_EXE_mcpod"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--oauth-issuer",
            "http://idp.example",
        ])
        .env("MCPOD_STATE_DIR", tempfile::tempdir().unwrap().path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--oauth-issuer") && err.contains("https://"),
        "{err}"
    );
}

/// `serve` accepting `issuer`'s opaque tokens through its introspection
/// endpoint, as the resource-server client with `secret`.
fn start_introspecting(issuer: &Issuer, secret: &str, dir: &std::path::Path) -> Serve {
    let file = dir.join(format!("secret-{secret}"));
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let mut flags = issuer.flags();
    flags.extend(
        [
            "--oauth-introspection",
            &format!("{}/introspect", issuer.url),
            "--oauth-client-id",
            "mcpod-rs",
            "--oauth-client-secret-file",
            file.to_str().unwrap(),
        ]
        .map(str::to_string),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Serve::start_with(&flags)
}

#[test]
fn opaque_tokens_are_introspected_with_the_same_checks_and_cached_with_a_bound() {
    let issuer = Issuer::start();
    let dir = tempfile::tempdir().unwrap();
    let serve = start_introspecting(&issuer, "rs-secret", dir.path());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let audience = serve.url();
    let opaque = |claims: Value, active: bool| {
        let mut all = json!({"iss": issuer.url, "sub": "opaque-1", "aud": audience,
                             "exp": now + 300, "scope": "mcpod"});
        for (k, v) in claims.as_object().unwrap() {
            all[k] = v.clone();
        }
        let ask = json!({"claims": all, "active": active}).to_string();
        issuer.control("POST", "/mint-opaque", &ask)["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let introspections = || {
        issuer.control("GET", "/stats", "")["introspections"]
            .as_u64()
            .unwrap()
    };
    let answer_to = |serve: &Serve, token: &str| {
        serve.raw(
            &format!("{}authorization: Bearer {token}\r\n", serve.host()),
            INIT,
        )
    };

    // A good one opens MCP, and its answer is cached: asked once.
    let good = opaque(json!({}), true);
    let before = introspections();
    for _ in 0..3 {
        let answer = answer_to(&serve, &good);
        assert_eq!(status(&answer), "HTTP/1.1 200 OK", "{answer}");
    }
    assert_eq!(
        introspections() - before,
        1,
        "a good token asked more than once"
    );

    // The answer's claims are checked as a JWT's are.
    for (claims, active, says) in [
        (json!({}), false, "not active"),
        (json!({"aud": "http://127.0.0.1:1/mcp"}), true, "audience"),
        (json!({"iss": "https://evil.example"}), true, "issuer"),
        (json!({"exp": now - 3600}), true, "expired"),
    ] {
        let answer = answer_to(&serve, &opaque(claims, active));
        assert!(status(&answer).contains("401"), "{says}: {answer}");
        assert!(answer.contains(says), "{says}: {answer}");
    }
    let answer = answer_to(&serve, &opaque(json!({"scope": "other"}), true));
    assert!(status(&answer).contains("403"), "{answer}");

    // A made-up token is asked once, then refused from the cache.
    let before = introspections();
    for _ in 0..10 {
        let answer = answer_to(&serve, "made-up-opaque-token");
        assert!(status(&answer).contains("401"), "{answer}");
    }
    assert_eq!(introspections() - before, 1);
    // A JWT is still checked here, not introspected.
    let before = introspections();
    let jwt = issuer.mint(&serve, json!({}), "RS256", "rsa-1", json!({}));
    assert_eq!(status(&answer_to(&serve, &jwt)), "HTTP/1.1 200 OK");
    assert_eq!(introspections(), before);
    assert!(serve.stop().success());

    // Introspecting with a wrong secret: the issuer refuses mcpod, so 503
    // (the token may be good), not 401.
    let wrong = start_introspecting(&issuer, "not-the-secret", dir.path());
    let token = opaque(json!({"aud": wrong.url()}), true);
    let answer = answer_to(&wrong, &token);
    assert!(status(&answer).contains("503"), "{answer}");
    assert!(wrong.stop().success());
}
