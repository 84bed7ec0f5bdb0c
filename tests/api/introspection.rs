//! Health checking and server reflection, as grpcurl, buf curl and Kubernetes probes use them.

use crate::support::{
    app::{channel, TestApp},
    fake_kgen::FakeKgen,
};
use tokio_stream::StreamExt;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

#[tokio::test]
async fn health_is_serving_for_the_server_and_the_session_service() {
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;
    let mut health = HealthClient::new(channel(app.addr).await);

    for service in ["", "kgen.session.v1.SessionService"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner();
        assert_eq!(
            reply.status(),
            ServingStatus::Serving,
            "service {service:?}"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.Such".into(),
        })
        .await;
    assert_eq!(
        unknown.expect_err("unknown service").code(),
        tonic::Code::NotFound
    );
}

#[tokio::test]
async fn reflection_v1_lists_and_describes_the_session_service() {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;
    let mut client = ServerReflectionClient::new(channel(app.addr).await);

    let requests = tokio_stream::iter([
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "kgen.session.v1.SessionService".into(),
            )),
        },
    ]);
    let mut replies = client
        .server_reflection_info(requests)
        .await
        .expect("reflection answers")
        .into_inner();

    let Some(MessageResponse::ListServicesResponse(list)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"kgen.session.v1.SessionService"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");

    let Some(MessageResponse::FileDescriptorResponse(files)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected file descriptors")
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

#[tokio::test]
async fn reflection_v1alpha_is_served_for_older_tools() {
    use tonic_reflection::pb::v1alpha::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;
    let mut client = ServerReflectionClient::new(channel(app.addr).await);

    let requests = tokio_stream::iter([ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    }]);
    let mut replies = client
        .server_reflection_info(requests)
        .await
        .expect("v1alpha answers")
        .into_inner();

    let Some(MessageResponse::ListServicesResponse(list)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list")
    };
    assert!(list
        .service
        .iter()
        .any(|s| s.name == "kgen.session.v1.SessionService"));
}

#[tokio::test]
async fn unknown_services_and_methods_are_unimplemented_and_nothing_reaches_kgen() {
    use kgen_gateway::proto::{CreateSessionRequest, CreateSessionResponse};
    use tonic::codegen::http::uri::PathAndQuery;

    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;
    let mut grpc = tonic::client::Grpc::new(channel(app.addr).await);

    for path in [
        "/kgen.session.v1.SessionService/NoSuchMethod",
        "/kgen.session.v2.SessionService/CreateSession",
        "/no.Such/Thing",
        "/kgen.session.v1.SessionService/",
    ] {
        grpc.ready().await.expect("channel ready");
        let answer = grpc
            .unary::<_, CreateSessionResponse, _>(
                tonic::Request::new(CreateSessionRequest {
                    user_id: "player-1".into(),
                }),
                PathAndQuery::from_static(path),
                tonic_prost::ProstCodec::default(),
            )
            .await;
        assert_eq!(
            answer.expect_err(path).code(),
            tonic::Code::Unimplemented,
            "{path}"
        );
    }
    assert!(kgen.received().is_empty(), "no call reached KGeN");
}
