//! Bad `user_id`s are refused before anything is sent upstream.

use tonic::Code;
use wiremock::{matchers::any, Mock, MockServer, ResponseTemplate};

use crate::support::{app::TestApp, assertions::assert_status};

#[tokio::test]
async fn invalid_user_ids_are_invalid_argument_with_a_bad_request_on_user_id() {
    let mock = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&mock)
        .await;
    let app = TestApp::with_upstream(&mock).await;

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
}

#[tokio::test]
async fn a_user_id_of_exactly_256_bytes_is_accepted() {
    let mock = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({ "session_id": "s" })),
        )
        .expect(1)
        .mount(&mock)
        .await;
    let app = TestApp::with_upstream(&mock).await;

    app.create_session(&"x".repeat(256))
        .await
        .expect("at the limit is fine");
}
