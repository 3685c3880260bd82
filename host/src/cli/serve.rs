//! `omk serve`: the live page of every goal and guarded session
//! ([`omk::serve`]).

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use omk::goal::GoalStore;

use super::{Outcome, Result, with_help};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen: loopback by default (a free port unless one is
    /// given). Another address lets other machines reach the page (with
    /// the token).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Print the URL as JSON (`{"url": …}`) on its own line.
    #[arg(long)]
    json: bool,
}

pub fn run(a: ServeArgs) -> Result<Outcome> {
    let store = GoalStore::open_default()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = omk::serve::Server::bind(store, a.listen)
            .await
            .map_err(|e| {
                with_help(
                    format!("cannot listen on {}: {e}", a.listen),
                    "pick a free port with `--listen 127.0.0.1:PORT`, or leave it out for any",
                )
            })?;
        let url = server.url();
        if a.json {
            outln!("{}", serde_json::json!({"url": url}));
        } else {
            outln!("omk serve: open {url}");
            outln!("(the token in it is this server's; Ctrl-C stops it)");
        }
        server.run().await.context("omk serve stopped")?;
        Ok(Outcome::Ok)
    })
}
