//! The sources a sink paused for want of room: resumed together when it
//! drains, or when it goes (a sink removed must not leave them paused).

use std::cell::RefCell;
use std::io;

use crate::{Context, Token};

/// Producers paused by one sink (a `Writer`, a `QueueWriter`).
#[derive(Debug, Default)]
pub(crate) struct PausedProducers(RefCell<Vec<Token>>);

impl PausedProducers {
    /// Pauses `producer` until [`resume_all`](Self::resume_all); once,
    /// however often it is asked.
    pub(crate) fn pause(&self, ctx: &mut Context, producer: Token) -> io::Result<()> {
        let mut paused = self.0.borrow_mut();
        if !paused.contains(&producer) {
            ctx.pause(producer)?;
            paused.push(producer);
        }
        Ok(())
    }

    /// Resumes every producer still registered, even if one fails; returns
    /// the first failure.
    pub(crate) fn resume_all(&self, ctx: &mut Context) -> io::Result<()> {
        let mut result = Ok(());
        for producer in std::mem::take(&mut *self.0.borrow_mut()) {
            if ctx.contains(producer) {
                let resumed = ctx.resume(producer);
                result = result.and(resumed);
            }
        }
        result
    }
}
