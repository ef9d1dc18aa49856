//! The ipc crate on real kernel objects: exact modes, errors that name the
//! object, timeouts, identity across an unlink, and shared memory that
//! shrinks under a reader.

mod common;

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use common::Name;
use ipc::{Access, MessageQueue, NamedSemaphore, QueueOptions, SharedMemory};

/// The umask is the process's: tests that set it take turns.
static UMASK: Mutex<()> = Mutex::new(());

fn small() -> QueueOptions {
    QueueOptions { max_messages: 2, message_size: 64, ..QueueOptions::default() }
}

#[test]
fn every_object_gets_exactly_its_mode_whatever_the_umask() {
    let _turn = UMASK.lock().unwrap_or_else(|e| e.into_inner());
    let name = Name::new();
    // SAFETY: plain call; restored below.
    let old = unsafe { libc::umask(0o077) };
    let queue = MessageQueue::create(&name.0, &QueueOptions { mode: 0o620, ..small() });
    let shm = SharedMemory::create(&name.0, 16, 0o640);
    let sem = NamedSemaphore::create(&name.0, 0o660, 0);
    // SAFETY: as above.
    unsafe { libc::umask(old) };

    assert_eq!(queue.expect("queue").info().expect("fstat").mode, 0o620);
    assert_eq!(shm.expect("shm").info().expect("fstat").mode, 0o640);
    let sem = sem.expect("semaphore");
    assert_eq!(sem.info().expect("stat").mode, 0o660);
    let file = std::fs::metadata(sem.path()).expect("the semaphore's file");
    assert_eq!(file.permissions().mode() & 0o777, 0o660);
}

#[test]
fn errors_name_the_object_and_keep_the_kind() {
    let name = Name::new();

    let missing = MessageQueue::open(&name.0, Access::Send).expect_err("no such queue");
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert_eq!(
        missing.to_string(),
        format!("queue {} does not exist (not created yet, or removed since)", name.0)
    );

    let _queue = MessageQueue::create(&name.0, &small()).expect("create");
    let twice = MessageQueue::create(&name.0, &small()).expect_err("exclusive");
    assert_eq!(twice.kind(), ErrorKind::AlreadyExists);
    assert!(twice.to_string().contains(&name.0), "{twice}");

    let bad = MessageQueue::open("no-slash", Access::Send).expect_err("a bad name");
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
    assert!(bad.to_string().starts_with("queue name 'no-slash'"), "{bad}");

    let shm = SharedMemory::open(&name.0, false).expect_err("no such object");
    assert_eq!(shm.to_string(), format!("shared memory object {} does not exist", name.0));
    let sem = NamedSemaphore::open(&name.0).expect_err("no such semaphore");
    assert_eq!(sem.to_string(), format!("semaphore {} does not exist", name.0));
}

#[test]
fn a_message_too_long_or_a_buffer_too_short_is_said_in_bytes() {
    let name = Name::new();
    let queue = MessageQueue::create(&name.0, &small()).expect("create");

    let long = queue.send(&[b'x'; 65], 0).expect_err("65 bytes into 64");
    assert_eq!(long.kind(), ErrorKind::InvalidInput);
    assert!(long.to_string().contains("takes at most 64 bytes"), "{long}");

    queue.send(b"hi", 0).expect("send");
    let short = queue.receive(&mut [0; 8]).expect_err("a buffer of 8 for messages of 64");
    assert!(short.to_string().contains("must hold 64"), "{short}");
}

#[test]
fn timeouts_end_waits_on_a_full_and_an_empty_queue() {
    let name = Name::new();
    let queue = MessageQueue::create(&name.0, &small()).expect("create");
    let wait = Duration::from_millis(50);

    // The kernel waits on CLOCK_REALTIME, which this VM's clock may step
    // meanwhile: the wait is measured on that clock, not on Instant's.
    let started = SystemTime::now();
    let empty = queue.receive_timeout(&mut [0; 64], wait).expect_err("empty");
    assert_eq!(empty.kind(), ErrorKind::TimedOut);
    assert!(started.elapsed().is_ok_and(|waited| waited >= wait));

    queue.send(b"1", 1).expect("send");
    queue.send(b"2", 2).expect("send");
    let full = queue.send_timeout(b"3", 0, wait).expect_err("full");
    assert_eq!(full.kind(), ErrorKind::TimedOut);

    // Higher priority first.
    let mut buf = [0; 64];
    assert_eq!(queue.receive(&mut buf).expect("receive"), (1, 2));
    assert_eq!(&buf[..1], b"2");
    assert_eq!(queue.attributes().expect("getattr").current_messages, 1);
}

#[test]
fn a_queue_knows_whether_its_name_still_names_it() {
    let name = Name::new();
    let first = MessageQueue::create(&name.0, &small()).expect("create");
    assert!(first.is_still_named().expect("look"));

    MessageQueue::unlink(&name.0).expect("unlink");
    assert!(!first.is_still_named().expect("look"));
    let second = MessageQueue::create(&name.0, &small()).expect("create again");
    assert!(!first.is_still_named().expect("look"), "another queue took the name");
    assert!(second.is_still_named().expect("look"));
}

#[test]
fn shared_memory_read_at_and_write_at_never_fault_when_the_object_shrinks() {
    let name = Name::new();
    let writer = SharedMemory::create(&name.0, 4096, 0o600).expect("create");
    writer.write_at(b"hello", 100).expect("write");
    let reader = SharedMemory::open(&name.0, false).expect("open");
    let mut buf = [0; 5];
    assert_eq!(reader.read_at(&mut buf, 100).expect("read"), 5);
    assert_eq!(&buf, b"hello");

    writer.set_len(0).expect("shrink");
    assert_eq!(reader.read_at(&mut buf, 100).expect("read past the end"), 0);
    writer.write_at(b"again", 0).expect("write grows it");
    assert_eq!(writer.len().expect("len"), 5);
    let view = reader.view::<[u8; 5]>().expect("a view of 5 bytes");
    assert_eq!(&view.read(), b"again");
    assert!(reader.view::<[u8; 6]>().is_err(), "a view larger than the object is refused");
}

#[test]
fn a_semaphore_counts_tokens_across_threads() {
    let name = Name::new();
    let sem = std::sync::Arc::new(NamedSemaphore::create(&name.0, 0o600, 0).expect("create"));
    let waiter = {
        let sem = sem.clone();
        std::thread::spawn(move || sem.wait_timeout(Duration::from_secs(10)))
    };
    sem.post().expect("post");
    assert!(waiter.join().expect("thread").expect("wait"), "the waiter got the token");
    assert_eq!(sem.value().expect("value"), 0);
    assert!(!sem.try_wait().expect("try"));
}
