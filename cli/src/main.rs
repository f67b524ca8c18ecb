//! `doumi`: the operator's tool. `doumi up` runs the whole stack locally,
//! `doumi chat` talks to a gateway as a WeChat reader would, `doumi menu`
//! manages the account's custom menu.
#![forbid(unsafe_code)]

mod book;
mod chat;
mod menu;
mod stand_in;
mod state;
mod up;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// `doumi up` runs the three services in this process: they allocate
/// through jemalloc as their own binaries do.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use doumi_runtime::telemetry;

/// doumi (豆米查书): a WeChat Official Account bot for books.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    telemetry: telemetry::TelemetryArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run gateway, bot and catalog on this machine (offline defaults: the
    /// bundled sample catalog and an in-process cache).
    Up(Box<up::UpArgs>),
    /// Send messages to a gateway as a WeChat reader and print the replies.
    Chat(chat::ChatArgs),
    /// Ask the catalog's gRPC API for books: by ISBN, by keywords, by Douban id.
    Book(book::BookArgs),
    /// Manage the official account's custom menu (the 「扫码查书」 button).
    Menu(menu::MenuArgs),
    /// Serve a stand-in for WeChat's API (tokens, customer-service
    /// messages), to run the three binaries with delivery on but no account.
    StandIn(stand_in::StandInArgs),
}

#[tokio::main]
async fn main() {
    // clap's own usage errors would exit 2, which `doumi book` uses for "not
    // found"; 64 (EX_USAGE) is what the services' binaries exit with for bad
    // settings. Help and version still exit 0.
    let matches = Cli::command()
        .try_get_matches()
        .and_then(|matches| Ok((Cli::from_arg_matches(&matches)?, matches)));
    let (cli, matches) = matches.unwrap_or_else(|error| {
        let _ = error.print();
        std::process::exit(if error.use_stderr() { 64 } else { 0 })
    });
    let result = match cli.command {
        Command::Up(mut args) => {
            keep_local(&mut args, &matches);
            up::run(*args, &cli.telemetry).await
        }
        Command::Chat(args) => chat::run(args).await,
        Command::Book(args) => book::run(args).await,
        Command::Menu(args) => menu::run(args).await,
        Command::StandIn(args) => stand_in::run(args).await,
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(book::exit_code(&error));
    }
}

/// `doumi up` listens on loopback wherever the operator did not give an
/// address (flag or variable).
fn keep_local(args: &mut up::UpArgs, matches: &clap::ArgMatches) {
    if let Some(up) = matches.subcommand_matches("up") {
        args.listen_on_loopback(|id| {
            up.value_source(id) == Some(clap::parser::ValueSource::DefaultValue)
        });
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// `doumi up` flattens the settings of all three services: no two may
    /// share a flag or an id.
    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn doumi_up_listens_on_loopback_unless_told_otherwise() {
        use clap::FromArgMatches;
        let up = |extra: &[&str]| {
            let argv = ["doumi", "up"].iter().chain(extra);
            let matches = Cli::command().try_get_matches_from(argv).unwrap();
            let super::Command::Up(mut args) = Cli::from_arg_matches(&matches).unwrap().command
            else {
                panic!("not up");
            };
            super::keep_local(&mut args, &matches);
            args
        };
        let local = up(&[]);
        assert_eq!(local.gateway_listen(), "127.0.0.1:8080");
        let public = up(&["--gateway-listen", "0.0.0.0:8080"]);
        assert_eq!(public.gateway_listen(), "0.0.0.0:8080");
    }
}
