//! A session with the in-process demo server, recorded: connection, logon notifications,
//! pointer, desktop, input, a redraw, a resize, a server disconnect.

use std::time::Duration;

use async_rdp::framing::{FramedRead, FramedWrite};
use async_rdp::ironrdp_connector::DesktopSize;
use async_rdp::trust::Fingerprint;
use async_rdp::{Event, KeyState, Scancode, Session};
use async_rdp_demo_server::{Command, Config, DemoServer, ServerEvent};
use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::StreamExt;

use crate::engine::BoxError;
use crate::harness::session;

/// What the client read, in clear.
pub(super) struct Recorded {
    /// The X.224 negotiation before TLS.
    pub(super) negotiation: Vec<u8>,
    /// The rest of the connection sequence, inside TLS.
    pub(super) connection: Vec<u8>,
    /// Everything the server sent in the session.
    pub(super) session: Vec<u8>,
}

/// Records a session with a demo server at 160 x 96.
pub(super) fn record_session() -> Result<Recorded, BoxError> {
    async_std::task::block_on(async {
        let server = DemoServer::bind(Config {
            desktop: DesktopSize { width: 160, height: 96 },
            ..session::demo_config()
        })
        .await?;
        let (event_tx, mut events) = unbounded();
        let (commands, command_rx) = unbounded();
        // Boxed: these futures are large in a debug build, too large for a test thread's stack.
        let serving = Box::pin(server.serve_one(event_tx, command_rx));
        let client = Box::pin(record_client(&server, &mut events, &commands));
        let (client, served) =
            async_std::future::timeout(Duration::from_secs(60), async { futures::join!(client, serving) }).await?;
        served?;
        client
    })
}

/// The client's side of [`record_session`]: connects, plays the session, and returns what it
/// read.
async fn record_client(
    server: &DemoServer,
    events: &mut UnboundedReceiver<ServerEvent>,
    commands: &UnboundedSender<Command>,
) -> Result<Recorded, BoxError> {
    let addr = server.local_addr()?;
    let pin = Fingerprint::of(server.certificate());
    let (framed, result, recording) = session::connect(addr, pin, session::client_config(server)).await?;
    let session_start = recording.tls.borrow().len() - framed.peek().len();
    let mut session = Session::new(framed, result);
    let all = play(&mut session, events, commands).await?;
    let resized = all.iter().any(|e| matches!(e, Event::Resized { .. }));
    let graphics = all.iter().filter(|e| matches!(e, Event::Graphics(_))).count();
    println!(
        "client saw {} events: {graphics} graphics updates, resized: {resized}",
        all.len()
    );
    if !resized || graphics == 0 {
        return Err::<_, BoxError>(format!("the recording missed events: {all:?}").into());
    }
    drop(session);
    let tcp = recording.tcp.borrow();
    let tls = recording.tls.borrow();
    Ok(Recorded {
        negotiation: tcp[..recording.tcp_before_tls].to_vec(),
        connection: tls[..session_start].to_vec(),
        session: tls[session_start..].to_vec(),
    })
}

/// Input, a redraw, a resize, a server disconnect: every event the session gives, up to and
/// including `Disconnected`.
async fn play<S>(
    session: &mut Session<S>,
    events: &mut UnboundedReceiver<ServerEvent>,
    commands: &UnboundedSender<Command>,
) -> Result<Vec<Event>, BoxError>
where
    S: FramedRead + FramedWrite,
{
    let mut wait_server = async |want: fn(&ServerEvent) -> bool| -> Result<(), BoxError> {
        while let Some(event) = events.next().await {
            if want(&event) {
                return Ok(());
            }
        }
        Err("the demo server stopped".into())
    };

    let mut all = drain(session, Duration::from_millis(300)).await?;
    session.key(Scancode::new(0x1e), KeyState::Down)?;
    session.key(Scancode::new(0x1e), KeyState::Up)?;
    session.mouse_move(10, 10)?;
    session.request_full_redraw()?;
    all.extend(drain(session, Duration::from_millis(300)).await?);
    commands.unbounded_send(Command::Resize { width: 120, height: 80 })?;
    all.extend(drain(session, Duration::from_millis(300)).await?);
    wait_server(|e| matches!(e, ServerEvent::Resized { .. })).await?;
    all.extend(drain(session, Duration::from_millis(300)).await?);
    commands.unbounded_send(Command::Disconnect)?;
    loop {
        let event = session.next_event().await?;
        let end = matches!(event, Event::Disconnected(_));
        all.push(event);
        if end {
            return Ok(all);
        }
    }
}

/// Reads events until none has come for `quiet`.
pub(super) async fn drain<S>(session: &mut Session<S>, quiet: Duration) -> Result<Vec<Event>, BoxError>
where
    S: FramedRead + FramedWrite,
{
    let mut seen = Vec::new();
    while let Ok(event) = async_std::future::timeout(quiet, session.next_event()).await {
        seen.push(event?);
    }
    Ok(seen)
}
