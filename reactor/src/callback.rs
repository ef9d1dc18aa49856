//! The shapes of the closures that sources keep, each named once. A
//! source with a shape of its own (an accepted descriptor, a message and
//! its priority) names it beside the source.

use std::io;

use crate::Context;

/// Something happened: a close, a drain, a start.
pub(crate) type OnEvent = Box<dyn FnMut(&mut Context)>;

/// Bytes arrived: a line, a piece of a line, a message.
pub(crate) type OnBytes = Box<dyn FnMut(&[u8], &mut Context)>;

/// An error ends the source.
pub(crate) type OnError = Box<dyn FnMut(&io::Error, &mut Context)>;

/// A value arrived: a signal's number, a timer's expirations, a child's
/// exit status, a message of a channel.
pub(crate) type Callback<T> = Box<dyn FnMut(T, &mut Context)>;
