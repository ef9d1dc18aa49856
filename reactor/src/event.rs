//! The parts of an epoll event, as small newtypes over its raw integers: who
//! an event is for ([`Token`]), what a handler waits for ([`Interest`]) and
//! what happened ([`Readiness`]).

use std::fmt;
use std::ops::BitOr;

/// Names a registered handler.
///
/// A token is the handler's slot in the reactor plus a generation number,
/// packed into the 64 bits that epoll hands back with each event. When a
/// handler is removed its slot may be reused at once, but never with the same
/// generation, so an event that was already on its way for the old handler
/// is recognised as stale and dropped instead of reaching the new one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(u64);

impl Token {
    pub(crate) fn new(key: usize, generation: u32) -> Token {
        Token((u64::from(generation) << 32) | key as u64)
    }

    pub(crate) fn from_raw(raw: u64) -> Token {
        Token(raw)
    }

    pub(crate) fn as_raw(self) -> u64 {
        self.0
    }

    /// The slot in the reactor's slab.
    pub(crate) fn key(self) -> usize {
        (self.0 & u64::from(u32::MAX)) as usize
    }

    /// The generation of the slot when this token was handed out.
    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}#{})", self.key(), self.generation())
    }
}

/// What a handler wants to be told about, and how.
///
/// Level-triggered by default: as long as the condition holds, every round of
/// the loop reports it again. A handler may therefore do a bounded amount of
/// work per call and return; it will be called again next round. Combine with
/// `|` and refine with [`edge`](Interest::edge) or [`oneshot`](Interest::oneshot).
///
/// [`NONE`](Interest::NONE) takes the descriptor out of epoll: the handler is
/// not called at all until its interest is set again, whatever its peer did
/// (epoll reports hang-ups and errors for every descriptor it watches, and
/// a reported hang-up stays reported, so a descriptor left in epoll with no
/// interest would wake the loop every round). [`HANGUP`](Interest::HANGUP)
/// is the other choice: in epoll, told of hang-ups and errors only.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interest(u32);

/// Not an epoll flag (epoll has no bit for "hang-ups only": it reports them
/// to every registration): marks [`Interest::HANGUP`], and is taken off
/// before `epoll_ctl`.
const HANGUP_ONLY: u32 = 1 << 27;

impl Interest {
    /// Nothing: the descriptor is taken out of epoll and the handler is not
    /// called at all, as with [`Context::pause`](crate::Context::pause),
    /// until [`set_interest`](crate::Context::set_interest) asks for more.
    pub const NONE: Interest = Interest(0);
    /// Only hang-ups and errors (`EPOLLHUP`, `EPOLLERR`): the interest of a
    /// writer with nothing to write that wants to learn that its reader went
    /// away. A hang-up is reported every round until the handler changes its
    /// interest or leaves.
    pub const HANGUP: Interest = Interest(HANGUP_ONLY);
    /// Data to read, a connection to accept, or end of file.
    pub const READABLE: Interest = Interest(libc::EPOLLIN as u32);
    /// Room to write.
    pub const WRITABLE: Interest = Interest(libc::EPOLLOUT as u32);

    /// Edge-triggered: reported once per change, so the handler must drain
    /// its source until `EAGAIN` or it will not be told again.
    pub const fn edge(self) -> Interest {
        Interest(self.0 | libc::EPOLLET as u32)
    }

    /// Reported once, then disabled until re-armed with `set_interest`.
    pub const fn oneshot(self) -> Interest {
        Interest(self.0 | libc::EPOLLONESHOT as u32)
    }

    /// Whether this interest includes readability.
    pub const fn is_readable(self) -> bool {
        self.0 & libc::EPOLLIN as u32 != 0
    }

    /// Whether this interest includes writability.
    pub const fn is_writable(self) -> bool {
        self.0 & libc::EPOLLOUT as u32 != 0
    }

    /// This interest less readability: what a paused handler waits for.
    pub(crate) const fn without_input(self) -> Interest {
        Interest(self.0 & !(libc::EPOLLIN as u32))
    }

    /// Whether epoll watches the descriptor at all for this interest.
    pub(crate) const fn is_watched(self) -> bool {
        self.0 & (libc::EPOLLIN as u32 | libc::EPOLLOUT as u32 | HANGUP_ONLY) != 0
    }

    /// The bits for `epoll_ctl`.
    pub(crate) const fn bits(self) -> u32 {
        self.0 & !HANGUP_ONLY
    }
}

impl BitOr for Interest {
    type Output = Interest;

    fn bitor(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
}

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (libc::EPOLLIN, "READABLE"),
            (libc::EPOLLOUT, "WRITABLE"),
            (HANGUP_ONLY as libc::c_int, "HANGUP"),
            (libc::EPOLLET, "EDGE"),
            (libc::EPOLLONESHOT, "ONESHOT"),
        ];
        write_flags(f, self.0, &names)
    }
}

/// What epoll reported for a handler's descriptor.
///
/// Readiness is a hint, not a promise: a read may still return `EAGAIN`
/// (spurious wake-ups happen), so handlers must treat `WouldBlock` as
/// "nothing for now". Hang-up and error are reported whatever the interest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Readiness(u32);

impl Readiness {
    pub(crate) fn from_bits(bits: u32) -> Readiness {
        Readiness(bits)
    }

    /// This readiness less what a paused handler must not hear of: input.
    pub(crate) fn without_input(self) -> Readiness {
        Readiness(self.0 & !((libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP) as u32))
    }

    /// Whether nothing is reported.
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// There is something to read (or accept), or the peer closed its end
    /// for writing: a read will not block.
    pub fn is_readable(self) -> bool {
        self.0 & (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP) as u32 != 0
    }

    /// There is room to write.
    pub fn is_writable(self) -> bool {
        self.0 & libc::EPOLLOUT as u32 != 0
    }

    /// The other end is gone (`EPOLLHUP`): reads return what is left, then
    /// end of file. Never cleared by reading, so a handler that sees it must
    /// finish and remove itself, or the loop would wake it forever.
    pub fn is_hangup(self) -> bool {
        self.0 & libc::EPOLLHUP as u32 != 0
    }

    /// An error is pending on the descriptor (`EPOLLERR`); a read or write
    /// will return it.
    pub fn is_error(self) -> bool {
        self.0 & libc::EPOLLERR as u32 != 0
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (libc::EPOLLIN, "READABLE"),
            (libc::EPOLLPRI, "PRIORITY"),
            (libc::EPOLLOUT, "WRITABLE"),
            (libc::EPOLLRDHUP, "READ_CLOSED"),
            (libc::EPOLLHUP, "HANGUP"),
            (libc::EPOLLERR, "ERROR"),
        ];
        write_flags(f, self.0, &names)
    }
}

fn write_flags(f: &mut fmt::Formatter<'_>, bits: u32, names: &[(libc::c_int, &str)]) -> fmt::Result {
    let mut sep = "";
    for &(bit, name) in names {
        if bits & bit as u32 != 0 {
            write!(f, "{sep}{name}")?;
            sep = " | ";
        }
    }
    if sep.is_empty() {
        f.write_str("NONE")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_key_and_generation() {
        let token = Token::new(0xdead_beef, 7);
        assert_eq!(token.key(), 0xdead_beef);
        assert_eq!(token.generation(), 7);
        assert_eq!(Token::from_raw(token.as_raw()), token);
    }

    #[test]
    fn same_key_with_another_generation_is_another_token() {
        assert_ne!(Token::new(3, 1), Token::new(3, 2));
    }

    #[test]
    fn interest_modifiers_keep_the_base() {
        let i = (Interest::READABLE | Interest::WRITABLE).edge().oneshot();
        assert!(i.is_readable() && i.is_writable());
        assert_eq!(format!("{i:?}"), "READABLE | WRITABLE | EDGE | ONESHOT");
        assert_eq!(format!("{:?}", Interest::NONE), "NONE");
    }

    #[test]
    fn only_none_is_unwatched_and_hangup_reaches_epoll_as_no_bits() {
        assert!(!Interest::NONE.is_watched() && !Interest::NONE.edge().is_watched());
        assert!(Interest::HANGUP.is_watched() && Interest::READABLE.is_watched());
        assert_eq!(Interest::HANGUP.bits(), 0);
        assert_eq!(format!("{:?}", Interest::HANGUP), "HANGUP");
    }
}
