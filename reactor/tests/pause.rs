//! A pause that holds: a paused source is not called, not even for the
//! hang-up of a peer that wrote a lot and left, and the loop does not wake
//! for it; resumed, it reads everything that waited.

mod util;

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use reactor::sources::LineReader;
use reactor::{Context, Interest, Reactor, Token};
use util::{expect_no_events, pipe, run_until, write};

/// Lines the peer writes before it leaves: 480 000 bytes, several of the
/// reader's 64 KiB reads.
const LINES: usize = 40_000;

/// How a test stops and restarts the reader.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Pause,
    NoInterest,
}

impl Stop {
    fn stop(self, ctx: &mut Context, token: Token) -> io::Result<()> {
        match self {
            Stop::Pause => ctx.pause(token),
            Stop::NoInterest => ctx.set_interest(token, Interest::NONE),
        }
    }

    fn restart(self, reactor: &mut Reactor, token: Token) -> io::Result<()> {
        match self {
            Stop::Pause => reactor.resume(token),
            Stop::NoInterest => reactor.set_interest(token, Interest::READABLE),
        }
    }
}

/// A pipe holding [`LINES`] lines whose writer has closed: its read end is
/// readable and hung up for good.
fn written_and_closed() -> OwnedFd {
    let (ours, theirs) = pipe();
    // SAFETY: F_SETPIPE_SZ only changes the pipe's capacity.
    let size = unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
    assert!(size >= 1 << 20, "F_SETPIPE_SZ: {}", io::Error::last_os_error());
    let text: String = (0..LINES).map(|i| format!("line {i:06}\n")).collect();
    write(&theirs, text.as_bytes());
    ours
}

/// A reader of `written_and_closed`, registered and paused at once, and
/// whether its close callback ran.
fn paused_reader_of_a_closed_pipe(reactor: &mut Reactor) -> (Token, Rc<Cell<bool>>) {
    let closed = Rc::new(Cell::new(false));
    let end = closed.clone();
    let reader = LineReader::new(written_and_closed(), 1024, |_, _| {}).on_close(move |_| end.set(true));
    let token = reactor.register(reader).unwrap();
    reactor.pause(token).unwrap();
    (token, closed)
}

fn paused_reader_reads_nothing_after_its_writer_left(how: Stop) {
    let mut reactor = Reactor::new().unwrap();
    let (lines, closed) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    let (count, end) = (lines.clone(), closed.clone());
    let reader = LineReader::new(written_and_closed(), 1024, move |_, ctx| {
        count.set(count.get() + 1);
        if count.get() == 1 {
            let me = ctx.current().expect("a reader's line callback has its token");
            how.stop(ctx, me).expect("stop reading");
        }
    })
    .on_close(move |_| end.set(true));
    let token = reactor.register(reader).unwrap();

    run_until(&mut reactor, "the first line", |_| lines.get() > 0);
    // The read in progress is finished: its lines are delivered, no more.
    let first_read = lines.get();
    assert!(first_read < LINES, "{how:?}: read on to {first_read} lines in the round it stopped");
    for _ in 0..5 {
        expect_no_events(&mut reactor); // no wake-up for the hang-up: no spin
        assert_eq!(lines.get(), first_read, "{how:?}: read while stopped");
    }
    assert!(!closed.get(), "{how:?}: closed while stopped");

    how.restart(&mut reactor, token).unwrap();
    run_until(&mut reactor, "the end of the stream", |_| closed.get());
    assert_eq!(lines.get(), LINES, "{how:?}");
}

#[test]
fn paused_reader_reads_nothing_after_its_writer_left_and_everything_once_resumed() {
    paused_reader_reads_nothing_after_its_writer_left(Stop::Pause);
}

#[test]
fn reader_with_no_interest_reads_nothing_after_its_writer_left_and_everything_after() {
    paused_reader_reads_nothing_after_its_writer_left(Stop::NoInterest);
}

#[test]
fn pause_keeps_the_interest_and_set_interest_while_paused_does_not_resume() {
    let mut reactor = Reactor::new().unwrap();
    let token = reactor.register(LineReader::new(written_and_closed(), 1024, |_, _| {})).unwrap();
    assert!(!reactor.is_paused(token));
    reactor.pause(token).unwrap();
    reactor.pause(token).unwrap(); // twice is once
    assert!(reactor.is_paused(token));
    reactor.set_interest(token, Interest::READABLE).unwrap();
    expect_no_events(&mut reactor);
    assert_eq!(reactor.interest(token), Some(Interest::READABLE));
    reactor.resume(token).unwrap();
    assert!(!reactor.is_paused(token));
    run_until(&mut reactor, "the reader to leave at end of file", |r| !r.contains(token));
    assert_eq!(reactor.pause(token).map_err(|e| e.kind()), Err(io::ErrorKind::NotFound));
    assert!(!reactor.is_paused(token));
}

#[test]
fn paused_handler_is_removed_and_shut_down_like_any_other() {
    let mut reactor = Reactor::new().unwrap();
    let (token, closed) = paused_reader_of_a_closed_pipe(&mut reactor);
    assert!(reactor.remove(token));
    assert!(closed.get() && reactor.is_empty());
}

#[test]
fn run_returns_when_every_handler_is_paused_and_no_timer_is_left_as_nothing_could_wake_it() {
    util::within_deadline(|| {
        let mut reactor = Reactor::new().unwrap();
        let (ours, _theirs) = pipe(); // never readable: only a resume could matter
        let token = reactor.register(LineReader::new(ours, 1024, |_, _| {})).unwrap();
        reactor.pause(token).unwrap();
        reactor.run().unwrap(); // instead of an epoll_wait on nothing, for ever
        assert!(reactor.is_empty(), "shut down as at any end of run");
    });
}

#[test]
fn a_timer_keeps_a_loop_of_paused_handlers_going_and_may_resume_them() {
    util::within_deadline(|| {
        let mut reactor = Reactor::new().unwrap();
        let (token, closed) = paused_reader_of_a_closed_pipe(&mut reactor);
        reactor.after(std::time::Duration::from_millis(5), move |ctx| ctx.resume(token).unwrap());
        reactor.run().unwrap(); // the reader reads to its end and leaves
        assert!(closed.get());
    });
}

/// A pipe whose capacity is one page, so that "full" comes soon.
fn small_pipe() -> (OwnedFd, OwnedFd) {
    let (read_end, write_end) = pipe();
    // SAFETY: F_SETPIPE_SZ only changes the pipe's capacity.
    let size = unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(size > 0, "F_SETPIPE_SZ: {}", io::Error::last_os_error());
    (read_end, write_end)
}

/// Reads `fd` into a count of bytes until end of file.
fn counting_reader(fd: OwnedFd, count: Rc<Cell<usize>>) -> reactor::sources::Fd<OwnedFd> {
    reactor::sources::Fd::new(fd, Interest::READABLE, move |fd, _, ctx| {
        let mut buf = [0u8; 64 * 1024];
        // SAFETY: reads into a live local buffer of its length.
        match unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } {
            0 => ctx.remove_self(),
            n if n > 0 => count.set(count.get() + n as usize),
            _ => {}
        }
        Ok(())
    })
}

/// One reader copies each line to two writers whose pipes nobody reads:
/// both fill and hold it. The first to drain releases its hold, but the
/// reader stays paused, reading nothing, until the second has drained too
/// (resumed by the first, it would add a line to the full one each time,
/// and that one would grow past its bound). Then every line arrives at both.
#[test]
fn a_producer_held_by_two_sinks_resumes_only_when_both_have_drained() {
    util::within_deadline(|| {
        let mut reactor = Reactor::new().unwrap();
        let (pipes, limit) = ([small_pipe(), small_pipe()], 4096);
        let [(a_read, a_write), (b_read, b_write)] = pipes;
        let a = reactor::sources::Writer::new(a_write, limit).unwrap().register(&mut reactor).unwrap();
        let b = reactor::sources::Writer::new(b_write, limit).unwrap().register(&mut reactor).unwrap();
        let (to_a, to_b) = (a.clone(), b.clone());
        let delivered = Rc::new(Cell::new(0));
        let seen = delivered.clone();
        let copy = LineReader::new(written_and_closed(), 1024, move |line, ctx| {
            seen.set(seen.get() + 1);
            to_a.write_line_or_pause(ctx, line, ctx.current()).unwrap();
            to_b.write_line_or_pause(ctx, line, ctx.current()).unwrap();
        });
        let (end_a, end_b) = (a.clone(), b.clone());
        let producer = reactor
            .register(copy.on_close(move |ctx| {
                end_a.close_when_drained(ctx);
                end_b.close_when_drained(ctx);
            }))
            .unwrap();
        run_until(&mut reactor, "the producer held", |r| r.is_paused(producer));
        assert!(!a.fits(1) && !b.fits(1), "held while a sink had room");

        let (got_a, got_b) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        reactor.register(counting_reader(a_read, got_a.clone())).unwrap();
        run_until(&mut reactor, "the first sink drained", |_| a.buffered() == 0);
        let lines_then = delivered.get();
        let rounds = util::run_for(&mut reactor, std::time::Duration::from_millis(100));
        assert!(rounds <= 3, "{rounds} rounds in 100 ms while held: a spin");
        assert!(reactor.is_paused(producer), "resumed while the second sink is full");
        assert_eq!(delivered.get(), lines_then, "lines delivered while held");

        reactor.register(counting_reader(b_read, got_b.clone())).unwrap();
        let all = LINES * 12;
        run_until(&mut reactor, "every line at both", |_| got_a.get() == all && got_b.get() == all);
        assert_eq!(delivered.get(), LINES);
    });
}
