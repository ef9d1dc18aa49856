//! A `Writer` whose reader is gone reports `EPIPE` instead of letting
//! `SIGPIPE` kill the process, even when the process left `SIGPIPE` at its
//! default (the Rust runtime ignores it; a C host may not). Changes the
//! process's signal disposition, hence a target of its own.

#[macro_use]
mod util;

use std::cell::RefCell;
use std::rc::Rc;

use reactor::sources::Writer;
use reactor::Reactor;
use util::{pipe, run_until};

harness_free_main!(a_pipe_without_reader_gives_epipe_not_a_sigpipe_death);

fn a_pipe_without_reader_gives_epipe_not_a_sigpipe_death() {
    // SAFETY: restoring the default disposition installs no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let (read_end, write_end) = pipe();
    drop(read_end);
    let mut reactor = Reactor::new().unwrap();
    let errors = Rc::new(RefCell::new(Vec::new()));
    let seen = errors.clone();
    let out = Writer::new(write_end, 1024)
        .unwrap()
        .on_error(move |e, _, _| seen.borrow_mut().push(e.raw_os_error()))
        .register(&mut reactor)
        .unwrap();
    // The direct write hits the pipe at once; with SIGPIPE at its default,
    // this would end the process here.
    let _ = out.write(&mut reactor, b"into the void\n");
    run_until(&mut reactor, "the error", |_| !errors.borrow().is_empty());
    assert_eq!(*errors.borrow(), [Some(libc::EPIPE)]);
}
