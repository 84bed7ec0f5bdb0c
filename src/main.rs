//! The `kgen-gateway` binary: parse configuration, start telemetry, build, run (or make one call, with `call`).
//! Everything else is in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser as _;
use kgen_gateway::{
    init_telemetry, sandbox, shutdown_signal, usage_error_line, Application, Cli, Command,
    GatewayArgs, SandboxArgs, ADMIN_LISTEN, LISTEN, SANDBOX_LISTEN,
};
use tokio::net::TcpListener;

/// Exit code for unusable settings (as clap uses for usage errors).
const EXIT_CONFIG: u8 = 2;
/// Exit code for failures after the settings were accepted (a port in use, say).
const EXIT_RUNTIME: u8 = 1;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(), // --help, --version
        Err(error) => {
            let argv: Vec<_> = std::env::args_os().collect();
            eprintln!("kgen-gateway: {}", usage_error_line(&error, &argv));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.worker_threads())
        .enable_all()
        .build();
    let result = match runtime {
        Err(error) => Err((EXIT_RUNTIME, format!("cannot start the runtime: {error}"))),
        Ok(runtime) => runtime.block_on(async {
            match cli.command {
                Some(Command::Sandbox(args)) => run_sandbox(args).await,
                // It prints its answer, or its failure, itself: only the exit status comes back.
                Some(Command::Call(args)) => args.run().await.map_err(|code| (code, String::new())),
                None => run_gateway(cli.gateway).await,
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            // One line per problem (invalid settings are all reported at once).
            for line in message.lines() {
                tracing::error!("{line}");
                eprintln!("kgen-gateway: {line}");
            }
            ExitCode::from(code)
        }
    }
}

async fn run_gateway(args: GatewayArgs) -> Result<(), (u8, String)> {
    let settings = args
        .into_settings_from_env()
        .map_err(|e| (EXIT_CONFIG, e.to_string()))?;
    let _telemetry = init_telemetry(settings.log_format, settings.otlp_endpoint.as_deref())
        .map_err(|e| (EXIT_CONFIG, e))?;
    let (listen, admin_listen) = (settings.listen, settings.admin_listen);
    let mut app = Application::build(settings)
        .await
        .map_err(|e| (EXIT_RUNTIME, e.to_string()))?;
    let listener = bind(listen, LISTEN).await?;
    app.serve_admin_on(bind(admin_listen, ADMIN_LISTEN).await?);
    let shutdown = shutdown_signal();
    app.run(listener, shutdown)
        .await
        .map_err(|e| (EXIT_RUNTIME, e.to_string()))
}

/// Binds `addr`, the value of `setting`; a failure names the setting and, for a port in use, what to do.
async fn bind(addr: std::net::SocketAddr, setting: &str) -> Result<TcpListener, (u8, String)> {
    TcpListener::bind(addr).await.map_err(|e| {
        let advice = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "; another process (another kgen-gateway?) holds that port: stop it, or give another address with {setting}"
            ),
            std::io::ErrorKind::AddrNotAvailable => {
                format!("; that IP is not an address of this machine: give one of its addresses, or 0.0.0.0, with {setting}")
            }
            _ => String::new(),
        };
        (EXIT_RUNTIME, format!("cannot listen on {addr} ({setting}): {e}{advice}"))
    })
}

async fn run_sandbox(args: SandboxArgs) -> Result<(), (u8, String)> {
    let _telemetry = init_telemetry(args.log_format.into(), None).map_err(|e| (EXIT_CONFIG, e))?;
    let config = args.config();
    let listener = bind(args.listen, SANDBOX_LISTEN).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| (EXIT_RUNTIME, e.to_string()))?;
    // Installed before the address is announced, so a SIGTERM right after it is a graceful stop.
    let shutdown = shutdown_signal();
    tracing::warn!(%addr, client_id = %config.client_id, "fake KGeN upstream (sandbox) listening; every session is FAKE");
    sandbox::serve(listener, config, shutdown)
        .await
        .map_err(|e| (EXIT_RUNTIME, format!("sandbox: {e}")))
}
