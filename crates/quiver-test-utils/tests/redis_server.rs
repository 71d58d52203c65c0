//! The Redis fixture itself: it starts, answers, dies on `kill`, comes back on the same port,
//! and leaves nothing running when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use quiver_test_utils::RedisServer;

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

#[test]
fn starts_kills_and_restarts_on_the_same_port() {
    let mut server = RedisServer::start();
    let port = server.port();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
    assert!(answers_ping(port));
    let first_pid = server.pid().expect("running");

    server.kill();
    assert_eq!(server.pid(), None);
    assert!(!answers_ping(port), "killed server still answers");

    server.restart();
    assert_eq!(server.port(), port);
    assert!(answers_ping(port));
    assert_ne!(server.pid(), Some(first_pid));

    drop(server);
    assert!(!answers_ping(port), "dropped server still answers");
}

#[test]
fn servers_do_not_share_ports() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    assert_ne!(a.port(), b.port());
    assert!(answers_ping(a.port()) && answers_ping(b.port()));
}
