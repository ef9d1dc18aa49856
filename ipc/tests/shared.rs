//! Shared arrays, create-or-open and removal at drop, within one process
//! (`processes.rs` has the tests across processes).

mod common;

use std::io::ErrorKind;
use std::ops::Bound;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use common::{which_exist, Name};
use ipc::{MessageQueue, NamedSemaphore, QueueOptions, SharedMemory};

/// The umask is the process's: tests that set it take turns.
static UMASK: Mutex<()> = Mutex::new(());

fn small() -> QueueOptions {
    QueueOptions { max_messages: 2, message_size: 64, mode: 0o640, ..QueueOptions::default() }
}

#[test]
fn array_elements_are_bounds_checked_and_slices_share_the_mapping() {
    let name = Name::new();
    let shm = SharedMemory::create(&name.0, 10 * 8, 0o600).expect("create");
    let array = shm.array::<u64>(10).expect("array");
    assert_eq!(array.len(), 10);
    for i in 0..10 {
        array.set(i, i as u64 * 3).expect("set");
    }
    let out = array.get(10).expect_err("index 10 of 10");
    assert_eq!(out.kind(), ErrorKind::InvalidInput);
    assert!(out.to_string().contains(&name.0) && out.to_string().contains("index 10"), "{out}");
    assert!(array.set(10, 0).is_err());

    let middle = array.slice(4..7).expect("slice");
    assert_eq!(middle.len(), 3);
    assert_eq!(middle.get(0).expect("get"), 12);
    assert!(middle.get(3).is_err(), "a slice is bounds-checked at its own end");
    middle.set(2, 99).expect("set through the slice");
    assert_eq!(array.get(6).expect("get"), 99, "the slice shares the mapping");
    assert_eq!(array.slice(..=1).expect("slice").len(), 2);
    assert_eq!(array.slice(10..).expect("an empty slice at the end").len(), 0);
    assert!(array.slice(8..11).is_err() && array.slice((Bound::Excluded(7), Bound::Excluded(7))).is_err());

    let again = SharedMemory::open(&name.0, false).expect("open").array::<u64>(10).expect("array");
    assert_eq!(again.get(6).expect("get"), 99, "another mapping of the object sees the store");
}

#[test]
fn an_array_of_an_object_shrunk_under_it_fails_instead_of_faulting() {
    let (name, bystander) = (Name::new(), Name::new());
    let shm = SharedMemory::create(&name.0, 8192, 0o600).expect("create");
    let array = shm.array::<u64>(1024).expect("array");
    let tail = array.slice(1000..).expect("slice");
    array.set(1000, 7).expect("set");
    let other = SharedMemory::create(&bystander.0, 8, 0o600).expect("create");
    let untouched = other.array::<u64>(1).expect("array");
    untouched.set(0, 5).expect("set");

    SharedMemory::open(&name.0, true).expect("open").set_len(0).expect("another handle shrinks it");
    let shrunk = array.get(1000).expect_err("the pages are gone");
    assert_eq!(shrunk.kind(), ErrorKind::InvalidData);
    assert!(shrunk.to_string().contains(&name.0) && shrunk.to_string().contains("shrank"), "{shrunk}");
    assert!(array.set(0, 1).is_err(), "every later access fails too");
    assert!(tail.get(0).is_err(), "and through a slice");
    assert_eq!(untouched.get(0).expect("another array is not affected"), 5);

    shm.set_len(8192).expect("grown again");
    let fresh = shm.array::<u64>(1024).expect("a new array");
    assert_eq!(fresh.get(1000).expect("get"), 0, "the object was emptied by the shrink");
}

#[test]
fn an_array_larger_than_the_object_or_misaligned_is_refused() {
    let name = Name::new();
    let shm = SharedMemory::create(&name.0, 64, 0o600).expect("create");
    let large = shm.array::<u64>(9).expect_err("72 bytes of 64");
    assert_eq!(large.kind(), ErrorKind::InvalidData);
    assert!(large.to_string().contains("64 bytes, smaller than the 72"), "{large}");
    assert!(shm.array_at::<u64>(60, 1).is_err(), "past the end");
    assert_eq!(shm.array_at::<u64>(4, 1).expect_err("misaligned").kind(), ErrorKind::InvalidInput);

    let counters = shm.array::<AtomicU32>(2).expect("two counters at 0");
    let records = shm.array_at::<[u8; 8]>(8, 7).expect("records after them");
    counters.with(1, |c| c.store(0x0102_0304, Ordering::Relaxed)).expect("store");
    assert_eq!(records.get(0).expect("get"), [0; 8]);
    records.set(6, *b"lastslot").expect("set");
    assert_eq!(shm.array::<[u8; 8]>(8).expect("array").get(7).expect("get"), *b"lastslot");
}

#[test]
fn a_read_only_array_refuses_stores_and_atomics() {
    let name = Name::new();
    let shm = SharedMemory::create(&name.0, 8, 0o600).expect("create");
    shm.array::<u32>(2).expect("array").set(1, 9).expect("set");
    let reader = SharedMemory::open(&name.0, false).expect("open read-only");
    let values = reader.array::<u32>(2).expect("array");
    assert!(!values.is_writable());
    assert_eq!(values.get(1).expect("get"), 9);
    assert_eq!(values.set(0, 1).expect_err("read-only").kind(), ErrorKind::PermissionDenied);
    let atomics = reader.array::<AtomicU32>(2).expect("array");
    assert_eq!(atomics.with(0, |_| ()).expect_err("read-only").kind(), ErrorKind::PermissionDenied);
}

#[test]
fn create_or_open_creates_then_opens_and_only_the_creator_removes() {
    let name = Name::new();
    let (shm, created_shm) = SharedMemory::create_or_open(&name.0, 64, 0o600).expect("shm");
    let (sem, created_sem) = NamedSemaphore::create_or_open(&name.0, 0o600, 3).expect("semaphore");
    let (queue, created_queue) = MessageQueue::create_or_open(&name.0, &small()).expect("queue");
    assert!(created_shm && created_sem && created_queue);
    assert!(shm.removes_on_drop() && sem.removes_on_drop() && queue.removes_on_drop());

    let (shm2, again_shm) = SharedMemory::create_or_open(&name.0, 64, 0o600).expect("shm");
    let (sem2, again_sem) = NamedSemaphore::create_or_open(&name.0, 0o600, 0).expect("semaphore");
    let (queue2, again_queue) = MessageQueue::create_or_open(&name.0, &small()).expect("queue");
    assert!(!again_shm && !again_sem && !again_queue, "the second calls open");
    assert!(!shm2.removes_on_drop() && !sem2.removes_on_drop() && !queue2.removes_on_drop());
    assert_eq!(sem2.value().expect("value"), 3, "an opened semaphore keeps its value");
    assert_eq!(shm2.info().expect("fstat").identity, shm.info().expect("fstat").identity);

    drop((shm2, sem2, queue2));
    assert_eq!(which_exist(&name.0), [true; 3], "an opener's drop removes nothing");
    drop((shm, sem, queue));
    assert_eq!(which_exist(&name.0), [false; 3], "the creator's drop removes all three");
}

#[test]
fn create_or_open_gives_exactly_the_mode_whatever_the_umask() {
    let _turn = UMASK.lock().unwrap_or_else(|e| e.into_inner());
    let name = Name::new();
    // SAFETY: plain call; restored below.
    let old = unsafe { libc::umask(0o077) };
    let shm = SharedMemory::create_or_open(&name.0, 16, 0o640);
    let sem = NamedSemaphore::create_or_open(&name.0, 0o660, 0);
    let queue = MessageQueue::create_or_open(&name.0, &small());
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    assert_eq!(shm.expect("shm").0.info().expect("fstat").mode, 0o640);
    assert_eq!(sem.expect("semaphore").0.info().expect("stat").mode, 0o660);
    assert_eq!(queue.expect("queue").0.info().expect("fstat").mode, 0o640);
}

#[test]
fn create_or_open_refuses_mode_0_size_0_and_an_object_smaller_than_asked() {
    let name = Name::new();
    let zero = SharedMemory::create_or_open(&name.0, 16, 0).expect_err("mode 0");
    assert_eq!(zero.kind(), ErrorKind::InvalidInput);
    assert!(zero.to_string().contains(&name.0), "{zero}");
    assert_eq!(
        SharedMemory::create_or_open(&name.0, 0, 0o600).expect_err("size 0").kind(),
        ErrorKind::InvalidInput
    );
    assert!(NamedSemaphore::create_or_open(&name.0, 0, 0).is_err());
    assert!(MessageQueue::create_or_open(&name.0, &QueueOptions { mode: 0, ..small() }).is_err());
    assert_eq!(which_exist(&name.0), [false; 3], "nothing was made");

    let _small = SharedMemory::create(&name.0, 16, 0o600).expect("create");
    let larger = SharedMemory::create_or_open(&name.0, 32, 0o600).expect_err("16 bytes of 32");
    assert_eq!(larger.kind(), ErrorKind::InvalidData);
    assert!(larger.to_string().contains("16 bytes, smaller than the 32"), "{larger}");
    assert!(which_exist(&name.0)[1], "the refused opener removed nothing");
}

#[test]
fn an_owner_leaves_alone_a_name_given_to_another_object_since() {
    let name = Name::new();
    let shm = SharedMemory::create(&name.0, 8, 0o600).expect("shm").remove_on_drop();
    let sem = NamedSemaphore::create(&name.0, 0o600, 0).expect("semaphore").remove_on_drop();
    let queue = MessageQueue::create(&name.0, &small()).expect("queue").remove_on_drop();
    assert!(shm.is_still_named().expect("look") && sem.is_still_named().expect("look"));

    SharedMemory::unlink(&name.0).expect("unlink");
    NamedSemaphore::unlink(&name.0).expect("unlink");
    MessageQueue::unlink(&name.0).expect("unlink");
    let _new = (
        SharedMemory::create(&name.0, 8, 0o600).expect("shm"),
        NamedSemaphore::create(&name.0, 0o600, 0).expect("semaphore"),
        MessageQueue::create(&name.0, &small()).expect("queue"),
    );
    assert!(!shm.is_still_named().expect("look") && !sem.is_still_named().expect("look"));
    drop((shm, sem, queue));
    assert_eq!(which_exist(&name.0), [true; 3], "the new objects keep their names");
}

#[test]
fn remove_on_drop_can_be_asked_for_and_taken_back() {
    let name = Name::new();
    let mut shm = SharedMemory::create(&name.0, 8, 0o600).expect("shm");
    assert!(!shm.removes_on_drop(), "a plain create leaves the name, as in C");
    shm.set_remove_on_drop(true);
    drop(shm);
    assert!(!which_exist(&name.0)[1]);

    let (mut sem, _) = NamedSemaphore::create_or_open(&name.0, 0o600, 0).expect("semaphore");
    sem.set_remove_on_drop(false);
    drop(sem);
    assert!(which_exist(&name.0)[2], "handed over: the name stays");
}

#[test]
fn a_lock_is_given_back_at_the_end_of_its_scope_on_an_error_and_when_a_panic_unwinds() {
    let name = Name::new();
    let lock = NamedSemaphore::create(&name.0, 0o600, 1).expect("create").remove_on_drop();
    {
        let held = lock.lock().expect("lock");
        assert_eq!(held.semaphore().name(), name.0);
        assert!(lock.try_lock().expect("try").is_none(), "one token, held");
    }
    assert_eq!(lock.value().expect("value"), 1, "given back at the end of the scope");

    let failing = || -> std::io::Result<()> {
        let _held = lock.try_lock()?.expect("free");
        Err(std::io::Error::other("failing while it holds the lock"))
    };
    assert!(failing().is_err());
    assert_eq!(lock.value().expect("value"), 1, "given back on the error return");

    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _held = lock.lock_timeout(std::time::Duration::from_secs(1)).expect("free");
        panic!("while it holds the lock");
    }));
    assert!(panicked.is_err());
    assert_eq!(lock.value().expect("value"), 1, "given back when the panic unwound");
}
