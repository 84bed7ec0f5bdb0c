//! A command line clap refuses becomes one line that says what to change: clap's usage block would bury it, and
//! clap names the flag even when the bad value came from its environment variable, which is then named too.

use std::ffi::OsString;

use clap::{
    error::{ContextKind, ContextValue},
    CommandFactory as _,
};

use super::args::Cli;

/// The one line for a refused command line `argv` (the program name first, as [`std::env::args_os`] gives it).
pub fn one_line(error: &clap::Error, argv: &[OsString]) -> String {
    let text = error.to_string();
    let line: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut line = line.join(" ").trim_start_matches("error: ").to_owned();
    if let Some(env) = environment_source(error, argv) {
        line.push_str(&format!(
            " (the value comes from the environment variable {env})"
        ));
    }
    line
}

/// The environment variable that gave the refused value: the flag's, when it is set and the flag itself is not on
/// the command line.
fn environment_source(error: &clap::Error, argv: &[OsString]) -> Option<String> {
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    // "--listen <LISTEN>" or "--sandbox".
    let long = arg.split_whitespace().next()?.strip_prefix("--")?;
    let on_command_line = argv.iter().skip(1).any(|a| {
        a.to_str().is_some_and(|a| {
            a.strip_prefix("--")
                .is_some_and(|a| a == long || a.starts_with(&format!("{long}=")))
        })
    });
    if on_command_line {
        return None;
    }
    // The subcommand named on the command line, if any, decides whose flag it is (`--listen` is both the
    // gateway's and the sandbox's).
    let root = Cli::command();
    let subcommand = argv
        .iter()
        .skip(1)
        .find_map(|a| root.find_subcommand(a.to_str()?).cloned());
    let command = subcommand.as_ref().unwrap_or(&root);
    let env = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?
        .get_env()?;
    std::env::var_os(env).map(|_| env.to_string_lossy().into_owned())
}
