//! Bad `user_id`s are refused before anything is sent upstream.

use serde_json::json;
use tonic::Code;

use crate::support::{
    app::TestApp,
    assertions::assert_status,
    fake_kgen::{Answer, FakeKgen},
};

#[tokio::test]
async fn invalid_user_ids_are_invalid_argument_with_a_bad_request_on_user_id() {
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;

    for (user_id, why) in [
        ("", "empty"),
        ("   \t ", "empty"),
        ("user\u{0}1", "control"),
        ("user\n1", "control"),
        ("user\u{1b}[0m", "control"),
        (&"x".repeat(257), "256 bytes"),
        (&"é".repeat(129), "256 bytes"),
    ] {
        let status = app.create_session(user_id).await.expect_err("refused");
        let details = assert_status(&status, Code::InvalidArgument, "INVALID_USER_ID");
        let violations = &details.bad_request().expect("BadRequest").field_violations;
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "user_id");
        let description = &violations[0].description;
        assert!(
            description.contains(why)
                || (why == "control" && description.contains("control characters")),
            "{user_id:?}: {description}"
        );
    }
    assert!(kgen.received().is_empty(), "nothing was sent to KGeN");
}

#[tokio::test]
async fn a_user_id_of_exactly_256_bytes_is_accepted() {
    let kgen = FakeKgen::start().await;
    kgen.answer(Answer::json(200, json!({ "session_id": "s" })));
    let app = TestApp::with_upstream(&kgen).await;

    app.create_session(&"x".repeat(256))
        .await
        .expect("at the limit is fine");
    assert_eq!(kgen.received().len(), 1, "sent to KGeN once");
}
