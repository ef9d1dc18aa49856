//! The line-based sources: TCP and Unix-domain clients, one handler per
//! connection; lines cut at --message-size; partial last lines; many
//! clients at once; no descriptor or memory growth.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Barrier};
use std::thread;

use support::*;

fn connect(server: &Server) -> (TcpStream, String) {
    let stream = TcpStream::connect(server.tcp_addr()).expect("connect to the server");
    let tag = format!("tcp[{}]", stream.local_addr().unwrap());
    (stream, tag)
}

/// The lines of `tag`, without the tag, in the order printed.
fn lines_of(lines: &[String], tag: &str) -> Vec<String> {
    let prefix = format!("{tag}: ");
    lines.iter().filter_map(|l| l.strip_prefix(&prefix)).map(str::to_string).collect()
}

#[test]
fn stderr_says_listening_on_the_actual_address_then_ready() {
    let queue = TestQueue::new();
    let server = start_server(&queue);

    let log = server.stderr.snapshot();
    let listening = log.iter().position(|l| l.contains("listening on 127.0.0.1:")).expect("a listening line");
    let ready = log.iter().position(|l| l.contains("ready")).expect("a ready line");
    assert!(listening < ready, "listening must come before ready: {log:?}");
    assert_ne!(server.tcp_addr().port(), 0, "the actual port, not the 0 asked for");
    TcpStream::connect(server.tcp_addr()).expect("the printed address accepts connections");
}

#[test]
fn listen_none_opens_no_socket_and_still_serves_the_queue() {
    let queue = TestQueue::new();
    let server = ServerBuilder::on(&queue).args(["--listen", "none"]).start();

    send(&queue, "queue only");

    server.stdout.wait_exact("mq[0]: queue only");
    assert!(!server.stderr.snapshot().iter().any(|l| l.contains("listening on")));
}

#[test]
fn tcp_line_is_tagged_with_the_clients_address() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let (mut stream, tag) = connect(&server);

    stream.write_all(b"hello over tcp\n").unwrap();

    server.stdout.wait_exact(&format!("{tag}: hello over tcp"));
    assert!(tag.starts_with("tcp[127.0.0.1:"), "{tag}");
}

#[test]
fn tcp_lines_of_one_connection_are_printed_in_order_including_empty_ones() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let (mut stream, tag) = connect(&server);

    stream.write_all(b"one\n\nthree\n").unwrap();
    stream.write_all(b"fo").unwrap();
    stream.write_all(b"ur\nend\n").unwrap();

    server.stdout.wait_exact(&format!("{tag}: end"));
    assert_eq!(lines_of(&server.stdout.snapshot(), &tag), ["one", "", "three", "four", "end"]);
}

#[test]
fn partial_last_line_is_printed_when_the_client_disconnects() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let (mut stream, tag) = connect(&server);

    stream.write_all(b"complete\nno newline at the end").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();

    server.stdout.wait_exact(&format!("{tag}: no newline at the end"));
    assert_eq!(lines_of(&server.stdout.snapshot(), &tag), ["complete", "no newline at the end"]);
}

#[test]
fn line_longer_than_message_size_is_printed_in_pieces_of_that_size() {
    let queue = TestQueue::new();
    let server = start_server(&queue); // --message-size 256
    let (mut stream, tag) = connect(&server);
    let (a, b, c) = ("a".repeat(256), "b".repeat(256), "c".repeat(100));

    stream.write_all(format!("{a}{b}{c}\nnext\n").as_bytes()).unwrap();

    server.stdout.wait_exact(&format!("{tag}: next"));
    assert_eq!(lines_of(&server.stdout.snapshot(), &tag), [a, b, c, "next".to_string()]);
}

#[test]
fn line_of_exactly_message_size_is_one_line() {
    let queue = TestQueue::new();
    let server = start_server(&queue); // --message-size 256
    let (mut stream, tag) = connect(&server);
    let full = "x".repeat(256);

    stream.write_all(format!("{full}\nnext\n").as_bytes()).unwrap();

    server.stdout.wait_exact(&format!("{tag}: next"));
    assert_eq!(lines_of(&server.stdout.snapshot(), &tag), [full, "next".to_string()]);
}

#[test]
fn four_mib_line_keeps_the_servers_memory_bounded() {
    const LINE: usize = 4 << 20;
    let queue = TestQueue::new();
    let server = start_server(&queue); // --message-size 256
    let (mut stream, tag) = connect(&server);
    stream.write_all(b"warm up\n").unwrap();
    server.stdout.wait_exact(&format!("{tag}: warm up"));
    let baseline = server.peak_rss_kib();

    let writer = thread::spawn(move || {
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..LINE / chunk.len() {
            stream.write_all(&chunk).unwrap();
        }
        stream.write_all(b"\nafter\n").unwrap();
        stream
    });
    server.stdout.wait_exact(&format!("{tag}: after"));
    let _stream = writer.join().unwrap();

    let pieces = lines_of(&server.stdout.snapshot(), &tag);
    assert_eq!(pieces.len(), 1 + LINE / 256 + 1);
    assert!(pieces[1..pieces.len() - 1].iter().all(|p| p.len() == 256 && p.bytes().all(|b| b == b'z')));
    let peak = server.peak_rss_kib();
    println!("VmHWM: {baseline} KiB before, {peak} KiB after a {} MiB line", LINE >> 20);
    assert!(
        peak < baseline + 2048,
        "VmHWM grew from {baseline} KiB to {peak} KiB: the line seems to be held in memory"
    );
    assert!(peak < 20 * 1024, "VmHWM {peak} KiB is above 20 MiB");
}

#[test]
fn unix_socket_clients_are_tagged_unix_and_numbered_by_connection() {
    let queue = TestQueue::new();
    let dir = TempDir::new();
    let path = dir.join("postbox.sock");
    let server = ServerBuilder::on(&queue).args([format!("--listen=unix:{}", path.display())]).start();
    assert_eq!(server.listen_addr(), format!("unix:{}", path.display()));

    let mut first = UnixStream::connect(&path).unwrap();
    first.write_all(b"from the first\n").unwrap();
    server.stdout.wait_exact("unix[1]: from the first");
    let mut second = UnixStream::connect(&path).unwrap();
    second.write_all(b"from the second\n").unwrap();
    server.stdout.wait_exact("unix[2]: from the second");
    first.write_all(b"first again").unwrap();
    drop(first);

    server.stdout.wait_exact("unix[1]: first again");
}

#[test]
fn hundred_concurrent_tcp_clients_each_get_every_line_printed_exactly_once() {
    const CLIENTS: usize = 100;
    const LINES: usize = 50;
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let addr = server.tcp_addr();
    let start = Arc::new(Barrier::new(CLIENTS));

    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let start = start.clone();
            thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).expect("connect");
                let tag = format!("tcp[{}]", stream.local_addr().unwrap());
                start.wait();
                for line in 0..LINES {
                    stream.write_all(format!("client {client} line {line}\n").as_bytes()).unwrap();
                }
                tag
            })
        })
        .collect();
    let tags: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();

    let printed = server.stdout.wait_count(CLIENTS * LINES);
    assert_eq!(printed.len(), CLIENTS * LINES, "more lines than were sent");
    for (client, tag) in tags.iter().enumerate() {
        let expected: Vec<String> = (0..LINES).map(|line| format!("client {client} line {line}")).collect();
        assert_eq!(lines_of(&printed, tag), expected, "lines of client {client} ({tag})");
    }
}

#[test]
fn two_hundred_connections_opened_and_closed_leave_no_descriptor_behind() {
    const BATCH: usize = 50;
    let queue = TestQueue::new();
    let server = start_server(&queue);
    // After a round of the loop, when startup's descriptors (stdin's
    // duplicate, read to its end in the first round) are closed.
    send(&queue, "first round done");
    server.stdout.wait_exact("mq[0]: first round done");
    let baseline = server.fd_count();

    for batch in 0..4 {
        let mut open = Vec::new();
        for n in 0..BATCH {
            let (mut stream, tag) = connect(&server);
            stream.write_all(format!("batch {batch} connection {n}\n").as_bytes()).unwrap();
            open.push((stream, tag, format!("batch {batch} connection {n}")));
        }
        for (_, tag, line) in &open {
            server.stdout.wait_exact(&format!("{tag}: {line}"));
        }
        // The count sees the connections: it can see them gone.
        assert!(server.fd_count() >= baseline + BATCH, "{} open connections not counted", BATCH);
        drop(open);
    }

    server.wait_for("descriptor count back to the baseline", || server.fd_count() == baseline);
}

#[test]
fn connection_reset_by_the_client_is_dropped_and_others_go_on() {
    let queue = TestQueue::new();
    let server = start_server(&queue);
    let (mut rude, rude_tag) = connect(&server);
    rude.write_all(b"before the reset\n").unwrap();
    server.stdout.wait_exact(&format!("{rude_tag}: before the reset"));

    reset(rude);

    let (mut polite, tag) = connect(&server);
    polite.write_all(b"still served\n").unwrap();
    server.stdout.wait_exact(&format!("{tag}: still served"));
    send(&queue, "queue too");
    server.stdout.wait_exact("mq[0]: queue too");
}
