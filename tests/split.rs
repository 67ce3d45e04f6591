//! `split`/`unsplit` over a real loopback socket: the read half and the write half run as two
//! concurrent tasks on one thread, and `unsplit` gives back exactly what was buffered.

use async_rdp::framing::LocalFramed;
use async_std::net::{TcpListener, TcpStream};
use futures::io::{AsyncReadExt, AsyncWriteExt};

fn fastpath(len: u8, fill: u8) -> Vec<u8> {
    let mut frame = vec![0x00, len];
    frame.resize(usize::from(len), fill);
    frame
}

#[test]
fn halves_run_concurrently_on_one_thread_and_reunite() -> std::io::Result<()> {
    futures::executor::block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let frames: Vec<Vec<u8>> = (1..=20).map(|i| fastpath(10 + i, i)).collect();

        // The peer answers every 10-byte ping with one frame, and finally sends the first
        // half of one more frame, which must survive `unsplit`.
        let peer = {
            let frames = frames.clone();
            async move {
                let (mut sock, _) = listener.accept().await?;
                let mut ping = [0u8; 10];
                for frame in &frames {
                    sock.read_exact(&mut ping).await?;
                    assert_eq!(ping, [0xAB; 10], "pings arrive intact from the write half");
                    sock.write_all(frame).await?;
                }
                sock.write_all(&fastpath(50, 0xEE)[..20]).await?;
                Ok::<_, std::io::Error>(sock)
            }
        };

        let client = async {
            let framed = LocalFramed::new(TcpStream::connect(addr).await?);
            let (mut reader, mut writer) = framed.split();
            let read_task = async {
                let mut got = Vec::new();
                for _ in 0..frames.len() {
                    got.push(reader.read_pdu().await?.1.to_vec());
                }
                // Wait for the partial frame to be buffered.
                while reader.peek().len() < 20 {
                    reader.fill_buf().await?;
                }
                Ok::<_, async_rdp::Error>(got)
            };
            let write_task = async {
                for _ in 0..frames.len() {
                    writer.write_all(&[0xAB; 10]).await?;
                }
                Ok::<_, async_rdp::Error>(())
            };
            let (got, wrote) = futures::join!(read_task, write_task);
            wrote?;
            assert_eq!(got?, frames);
            let framed = reader
                .unsplit(writer)
                .map_err(|_| std::io::Error::other("halves did not match"))?;
            assert_eq!(framed.peek(), &fastpath(50, 0xEE)[..20]);
            Ok::<_, std::io::Error>(framed)
        };

        let (peer, client) = futures::join!(peer, client);
        let (mut sock, framed) = (peer?, client?);
        // The reunited stream still works in both directions.
        let (stream, leftover) = framed.into_inner();
        assert_eq!(leftover.len(), 20);
        let mut framed = LocalFramed::new_with_leftover(stream, leftover);
        sock.write_all(&fastpath(50, 0xEE)[20..]).await?;
        let (_, frame) = framed.read_pdu().await?;
        assert_eq!(frame.to_vec(), fastpath(50, 0xEE));
        Ok(())
    })
}
