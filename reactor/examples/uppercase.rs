//! Parent and child over two pipes: the parent sends each line of its stdin to
//! a child (this same program, run with `--child`), which uppercases it; the
//! parent prints the replies, stops reading while the child's stdin is full,
//! and closes that stdin at end of its own, then exits when the child has.
//!
//! `printf 'hello\nworld\n' | cargo run -p reactor --example uppercase`

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, ErrorKind, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::rc::Rc;

use reactor::sources::{Child, LineReader};
use reactor::Reactor;

fn main() -> io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--child") {
        for line in io::stdin().lock().lines() {
            writeln!(io::stdout(), "{}", line?.to_uppercase())?; // line-buffered: one reply per line
        }
        return Ok(());
    }
    let mut reactor = Reactor::new()?;
    // Lines the child's stdin refused, sent whole when it drains: the rest of one read of ours at
    // most, as a paused reader reads nothing (whatever stdin's writer does meanwhile); our reader.
    let (held, reader) = (Rc::new(RefCell::new(Vec::new())), Rc::new(Cell::new(None)));
    let (held_d, held_l, held_c, reader_d) = (held.clone(), held.clone(), held, reader.clone());
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("--child").stdin(Stdio::piped()).stdout(Stdio::piped());
    let child = Child::spawn(&mut command)?
        .on_stdout(64 * 1024, |reply, _| println!("{}", String::from_utf8_lossy(reply)))
        .on_stdin_drain(move |to_child, ctx| {
            let _ = to_child.write(ctx, &held_d.take()); // an empty writer takes it whole
            match reader_d.get().filter(|&r| ctx.contains(r)) {
                Some(r) => drop(ctx.resume(r)),
                None => to_child.close_when_drained(ctx), // our input ended meanwhile
            }
        })
        .on_exit(|_, ctx| ctx.stop())
        .register(&mut reactor.context())?;
    let (to_child, end) = child.stdin().cloned().map(|w| (w.clone(), w)).ok_or(ErrorKind::BrokenPipe)?;
    let stdin: OwnedFd = io::stdin().as_fd().try_clone_to_owned()?; // a dup: closing it leaves fd 0 alone
    let lines = LineReader::new(stdin, 64 * 1024, move |line, ctx| {
        let mut held = held_l.borrow_mut();
        match held.is_empty().then(|| to_child.write_line(ctx, line)) {
            Some(Ok(())) => {}
            Some(Err(e)) if e.kind() != ErrorKind::WouldBlock => eprintln!("to child: {e}"),
            _ => {
                // Refused, or lines held already: keep it, stop reading until the drain.
                let _ = ctx.current().map(|me| ctx.pause(me));
                held.extend([line, b"\n"].concat());
            }
        }
    });
    let lines = lines.on_close(move |ctx| {
        held_c.borrow().is_empty().then(|| end.close_when_drained(ctx)); // else the drain closes it
    });
    reader.set(Some(reactor.register(lines.one_read_per_readiness())?));
    reactor.run()
}
