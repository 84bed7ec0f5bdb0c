//! Answers the tests give the [`super::fake_kgen::FakeKgen`]: KGeN's documented example session, an upstream that
//! quotes the client secret back in disguise, and the answers of the log-leak tests ([`answer_with_things_to_leak`]);
//! and [`DeadPort`], where no KGeN answers at all.

use std::net::SocketAddr;

use socket2::{Domain, Socket, Type};

use super::fake_kgen::{Answer, FakeKgen};

/// A loopback port that refuses every connection: bound but not listening, and held, so no other test's server
/// can take it while the test runs (a port freed by dropping a listener can be given to the next `bind(0)`).
pub struct DeadPort {
    socket: Socket,
    addr: SocketAddr,
}

impl DeadPort {
    pub fn new() -> DeadPort {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a TCP socket");
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind port 0");
        let addr = socket
            .local_addr()
            .expect("bound address")
            .as_socket()
            .expect("an IP address");
        DeadPort { socket, addr }
    }

    /// `http://` and the address, as an upstream URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Gives the port up (so that a KGeN can come back on it) and says which it was.
    pub fn release(self) -> SocketAddr {
        drop(self.socket);
        self.addr
    }
}

/// The documented example response of KGeN.
pub fn example_session() -> serde_json::Value {
    serde_json::from_str(include_str!("../../fixtures/session-response.example.json"))
        .expect("fixture is JSON")
}

/// A fake KGeN whose usual answer is 200 with [`example_session`].
pub async fn example_kgen() -> FakeKgen {
    let kgen = FakeKgen::start().await;
    kgen.answer(Answer::json(200, example_session()));
    kgen
}

/// The ways an upstream might quote a secret so that a plain search for it fails: split by a NUL, upper-cased,
/// split by a line break, split by an escape character, and split by a NUL and upper-cased.
pub fn disguised_secrets(secret: &str) -> Vec<String> {
    let (head, tail) = secret.split_at(secret.len() / 2);
    vec![
        format!("{head}\u{0}{tail}"),
        secret.to_ascii_uppercase(),
        format!("{head}\r\n{tail}"),
        format!("{head}\u{1b}{tail}"),
        format!("{head}\u{0}{tail}").to_ascii_uppercase(),
    ]
}

/// A fake KGeN that rejects every call with HTTP 400, its JSON `message` quoting the `x-client-secret` the call was
/// sent with in every way of [`disguised_secrets`].
pub async fn secret_echoing_upstream() -> FakeKgen {
    let kgen = FakeKgen::start().await;
    kgen.answer_with(|request| {
        let secret = request.header("x-client-secret").unwrap_or_default();
        let quoted = disguised_secrets(secret).join(" or ");
        Answer::json(
            400,
            serde_json::json!({ "message": format!("client secret {quoted} rejected") }),
        )
    });
    kgen
}

/// What must never reach a log line, whatever KGeN sends: the client secret, a session's tokens and its contact
/// details, as [`answer_with_things_to_leak`] serves them.
pub const MUST_NOT_LEAK: [&str; 6] = [
    super::app::CLIENT_SECRET,
    "eyJ-access-token-SECRET",
    "eyJ-refresh-token-SECRET",
    "gamer@example.com",
    "+919876543210",
    "+911112223334",
];

/// Makes `kgen` answer `good-user` with a session holding tokens, an email and phone numbers, and `bad-user` with a
/// 500 whose body echoes the client secret and a token back: what the log-leak tests feed the gateway.
pub fn answer_with_things_to_leak(kgen: &FakeKgen) {
    let mut session = example_session();
    session["access_token"] = serde_json::json!("eyJ-access-token-SECRET");
    session["refresh_token"] = serde_json::json!("eyJ-refresh-token-SECRET");
    session["email"] = serde_json::json!("gamer@example.com");
    session["phonenumber"] = serde_json::json!("+919876543210");
    session["linked_phone"] = serde_json::json!("+911112223334");
    kgen.answer_with(move |request| match request.user_id().as_deref() {
        Some("good-user") => Answer::json(200, session.clone()),
        Some("bad-user") => Answer::json(
            500,
            serde_json::json!({
                "message": format!(
                    "internal error for secret {} token eyJ-access-token-SECRET",
                    super::app::CLIENT_SECRET
                )
            }),
        ),
        _ => Answer::empty(404),
    });
}
