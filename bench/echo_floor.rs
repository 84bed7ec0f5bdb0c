//! The "echo floor" for benchmarks: a minimal tonic server whose `CreateSession` answers a canned response at once,
//! so its cost per call is what tonic + prost alone cost. `cargo run --release --example echo_floor -- 127.0.0.1:0`
//! (the default address) binds, prints `echo_floor listening addr=HOST:PORT` with the address it really got (the
//! line `scripts/bench.sh` reads with `wait_announced`), and serves until killed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test tool: a failure here should stop it loudly

use kgen_gateway::proto::{
    session_service_server::{SessionService, SessionServiceServer},
    CreateSessionRequest, CreateSessionResponse,
};
use tonic::{Request, Response, Status};

struct Echo {
    canned: CreateSessionResponse,
}

#[tonic::async_trait]
impl SessionService for Echo {
    async fn create_session(
        &self,
        request: Request<CreateSessionRequest>,
    ) -> Result<Response<CreateSessionResponse>, Status> {
        let mut response = self.canned.clone();
        response.user_id = request.into_inner().user_id;
        Ok(Response::new(response))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("echo_floor listening addr={}", listener.local_addr()?);
    let example = include_bytes!("../tests/fixtures/session-response.example.json");
    let canned = kgen_gateway::Session::decode(example).map(CreateSessionResponse::from)?;
    tonic::transport::Server::builder()
        .add_service(SessionServiceServer::new(Echo { canned }))
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await?;
    Ok(())
}
