//! The stale-event case, in a test binary of its own: it needs a descriptor
//! number to be reused, and no other test thread may open or close
//! descriptors meanwhile.
//!
//! One `epoll_wait` batch holds an event for `a`, then one for `b`. `a`
//! removes `b` (closing its descriptor) and registers `c`, which gets `b`'s
//! slot in the slab and a descriptor with `b`'s number. The event for `b`
//! that is still in the batch must not reach `c`.

mod util;

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use reactor::{Reactor, Token};
use util::{doorbell, drain, eventfd, pipe, ring, write, Journal, Probe, DEADLINE};

#[test]
fn stale_event_is_not_delivered_to_new_handler_in_same_slot() {
    let journal = Journal::new();
    let mut reactor = Reactor::new().unwrap();
    let (b_read, b_write) = pipe();
    let b_number = b_read.as_raw_fd();
    let b = reactor.register(Probe::new("b", b_read, &journal)).unwrap();

    let c_token = Rc::new(Cell::new(None::<Token>));
    let c_number = Rc::new(Cell::new(None::<RawFd>));
    let (a_fd, a_bell) = doorbell();
    let a = Probe::new("a", a_fd, &journal).on_ready({
        let (journal, c_token, c_number) = (journal.clone(), c_token.clone(), c_number.clone());
        move |fd, _, ctx| {
            drain(fd);
            assert!(ctx.remove(b), "b was registered");
            // b's descriptor is closed now; c gets one with the same number,
            // and is readable at once, so that any event would call it.
            let c_fd = eventfd_numbered(b_number);
            ring(&c_fd);
            c_number.set(Some(c_fd.as_raw_fd()));
            let c = Probe::new("c", c_fd, &journal).on_ready(|fd, _, _| {
                drain(fd);
                Ok(())
            });
            c_token.set(Some(ctx.register(c)?));
            Ok(())
        }
    });
    reactor.register(a).unwrap();

    // a becomes ready first, so its event comes first in the batch.
    ring(&a_bell);
    write(&b_write, b"x");
    assert_eq!(reactor.run_once(Some(DEADLINE)).unwrap(), 2, "one batch holds both events");

    let c = c_token.get().expect("a registered c");
    assert_eq!(c_number.get(), Some(b_number), "c has b's descriptor number");
    assert_eq!(slot(c), slot(b), "c has b's slot");
    assert_ne!(c, b, "but not b's token");
    assert_eq!(journal.entries(), ["b: start", "a: start", "a: ready", "b: shutdown", "c: start"]);

    // c's own readiness is reported in the next round, with c's token.
    assert_eq!(reactor.run_once(Some(DEADLINE)).unwrap(), 1);
    assert_eq!(journal.entries().last().map(String::as_str), Some("c: ready"));
}

/// A new eventfd with the descriptor number `number`, which must be free.
fn eventfd_numbered(number: RawFd) -> OwnedFd {
    let fd = eventfd();
    if fd.as_raw_fd() == number {
        return fd;
    }
    // Not the lowest free number: put it where we want it.
    // SAFETY: `number` is free (its owner just closed it) and this test is
    // alone in its process, so no other thread can take it meanwhile.
    let raw = unsafe { libc::dup3(fd.as_raw_fd(), number, libc::O_CLOEXEC) };
    assert_eq!(raw, number, "dup3: {}", io::Error::last_os_error());
    // SAFETY: `dup3` just made this descriptor; nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// The slab slot a token names. `Token` keeps it private; its `Debug` form,
/// `Token(<slot>#<generation>)`, shows it.
fn slot(token: Token) -> usize {
    let shown = format!("{token:?}");
    let inside = shown.strip_prefix("Token(").and_then(|s| s.strip_suffix(')'));
    let slot = inside.and_then(|s| s.split('#').next());
    slot.and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("unexpected token format {shown}"))
}
