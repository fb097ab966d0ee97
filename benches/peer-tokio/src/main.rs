//! peer-tokio: the idiomatic, untuned tokio-tungstenite echo server, the
//! comparison baseline for wsd's load benchmarks.
//!
//! `peer-tokio ADDR` accepts WebSocket connections on ADDR on a single-threaded
//! (current_thread) tokio runtime and echoes every text and binary message.
//! Each connection is the shape of tokio-tungstenite's own echo-server example:
//! the stream is split and its reading half, filtered to data messages, is
//! `forward`ed into its writing half, which flushes only when no more input is
//! ready (not once per message). Pings and closes are answered by tungstenite's
//! defaults; TCP_NODELAY is set on every connection. There is no broadcast or
//! room of any kind: it is an echo server only.
//!
//! It must stay idiomatic and unoptimised: it measures what the common stack
//! does out of the box, not what can be tuned into it.

use std::future::ready;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};

fn main() -> ExitCode {
    let Some(addr) = std::env::args().nth(1) else {
        eprintln!("usage: peer-tokio ADDR   (e.g. 127.0.0.1:9002)");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("peer-tokio: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(&addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peer-tokio: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: &str) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("peer-tokio listening on ws://{}", listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream));
            }
            Err(e) => {
                // Out of descriptors, most likely: back off instead of spinning.
                eprintln!("peer-tokio: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (write, read) = ws.split();
    // Errors (a reset peer, a protocol violation) just end the connection.
    let _ = read
        .try_filter(|message| ready(message.is_text() || message.is_binary()))
        .forward(write)
        .await;
}
