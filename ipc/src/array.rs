//! Typed arrays in shared memory: [`SharedArray`], made by
//! [`SharedMemory::array`] and [`SharedMemory::array_at`].
//!
//! Every access is bounds-checked and goes through the [`sigbus`](crate::sigbus)
//! guard: if another process shrinks the object under the mapping, the access
//! that meets the missing pages returns an error instead of killing the
//! process, and so does every later one.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem;
use std::ops::{Bound, RangeBounds};
use std::ptr;
use std::rc::Rc;
use std::sync::atomic;

use crate::shm::{Mapping, SharedMemory};
use crate::sigbus::Guard;
use crate::sys::context;
use crate::Plain;

mod sealed {
    pub trait Sealed {}
}

/// What a [`SharedArray`] may hold: any [`Plain`] type (read and written
/// whole, by value), and the integer atomics of `std::sync::atomic` (see
/// [`Atomic`]).
pub trait Element: sealed::Sealed {}

impl<T: Plain> sealed::Sealed for T {}
impl<T: Plain> Element for T {}

/// The integer atomics of `std::sync::atomic`, for values that several
/// processes change at once: [`SharedArray::with`] lends one out. (Not
/// `AtomicBool`: another process may store a byte that is no `bool`.)
pub trait Atomic: Element + Sync {}

macro_rules! atomics {
    ($($atomic:ident),*) => {$(
        impl sealed::Sealed for atomic::$atomic {}
        impl Element for atomic::$atomic {}
        impl Atomic for atomic::$atomic {}
    )*};
}

atomics!(
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    AtomicUsize,
    AtomicI8,
    AtomicI16,
    AtomicI32,
    AtomicI64,
    AtomicIsize
);

/// `len` elements of `T` in a shared memory object, mapped shared: what one
/// process stores, the others see. Made by [`SharedMemory::array`].
///
/// [`get`](Self::get) and [`set`](Self::set) copy a [`Plain`] element whole
/// (guard them with a [`NamedSemaphore`](crate::NamedSemaphore) when a
/// torn record matters); [`with`](Self::with) lends an [`Atomic`] element
/// for `fetch_add`, `compare_exchange` and the rest. Every access checks its
/// index, and fails (`InvalidData`, naming the object) once another process
/// has shrunk the object under the mapping, where a plain mapping would die
/// of `SIGBUS`. [`slice`](Self::slice) gives a part of it, sharing the
/// mapping.
///
/// Not `Send`: a thread, like a process, opens the object and makes its own.
///
/// ```
/// use ipc::{Plain, SharedMemory};
///
/// #[repr(C)]
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// struct Reading { sensor: u32, celsius: i32 }
/// // SAFETY: two integers, no padding: any bytes are a valid `Reading`.
/// unsafe impl Plain for Reading {}
///
/// # fn main() -> std::io::Result<()> {
/// let name = format!("/ipc-doc-array-{}", std::process::id());
/// let shm = SharedMemory::create(&name, 4 * std::mem::size_of::<Reading>(), 0o600)?.remove_on_drop();
/// let readings = shm.array::<Reading>(4)?;
/// readings.set(2, Reading { sensor: 7, celsius: -3 })?;
///
/// // Another process (a thread here) opens the object by its name.
/// let seen = std::thread::spawn({
///     let name = name.clone();
///     move || -> std::io::Result<Reading> {
///         let theirs = SharedMemory::open(&name, false)?.array::<Reading>(4)?;
///         theirs.get(2)
///     }
/// });
/// assert_eq!(seen.join().expect("the reader")?, Reading { sensor: 7, celsius: -3 });
/// assert!(readings.get(4).is_err(), "out of bounds");
/// assert_eq!(readings.slice(2..)?.get(0)?.sensor, 7);
/// # Ok(())
/// # }
/// ```
pub struct SharedArray<T: Element> {
    mapped: Rc<Mapped>,
    /// Where element 0 is, in bytes from the start of the mapping.
    offset: usize,
    len: usize,
    _type: PhantomData<T>,
}

/// One mapping, shared by an array and its slices.
struct Mapped {
    // Declared before the mapping, so dropped first: the handler stops
    // watching the pages before they are unmapped.
    guard: Guard,
    mapping: Mapping,
    name: String,
}

impl SharedMemory {
    /// An array of `len` elements of `T` from the object's first byte.
    /// Fails if the object is smaller than `len * size_of::<T>()` bytes.
    pub fn array<T: Element>(&self, len: usize) -> io::Result<SharedArray<T>> {
        self.array_at(0, len)
    }

    /// An array of `len` elements of `T` from byte `offset` of the object
    /// (a multiple of `T`'s alignment): several arrays in one object, such
    /// as a ring's two atomic counters at 0 and its records after them.
    /// Fails if the object is smaller than `offset + len * size_of::<T>()`.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use ipc::SharedMemory;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let name = format!("/ipc-doc-array-at-{}", std::process::id());
    /// let shm = SharedMemory::create(&name, 8 + 4 * 16, 0o600)?.remove_on_drop();
    /// let (head, slots) = (shm.array::<AtomicU32>(2)?, shm.array_at::<[u8; 16]>(8, 4)?);
    /// slots.set(0, *b"first message!!!")?;
    /// head.with(0, |written| written.store(1, Ordering::Release))?;
    ///
    /// // Another process (a thread here) maps the same two arrays of the object.
    /// let reader = std::thread::spawn(move || -> std::io::Result<[u8; 16]> {
    ///     let shm = SharedMemory::open(&name, true)?;
    ///     let (head, slots) = (shm.array::<AtomicU32>(2)?, shm.array_at::<[u8; 16]>(8, 4)?);
    ///     assert_eq!(head.with(0, |written| written.load(Ordering::Acquire))?, 1);
    ///     slots.get(0)
    /// });
    /// assert_eq!(&reader.join().expect("the reader")?, b"first message!!!");
    /// # Ok(())
    /// # }
    /// ```
    pub fn array_at<T: Element>(&self, offset: usize, len: usize) -> io::Result<SharedArray<T>> {
        let (size, align) = (mem::size_of::<T>(), mem::align_of::<T>());
        let invalid = |why: String| self.context(io::Error::new(io::ErrorKind::InvalidInput, why));
        if size == 0 || offset % align != 0 {
            let why = format!(
                "offset {offset}: an array starts at a multiple of {align}, its elements are not empty"
            );
            return Err(invalid(why));
        }
        let bytes = len
            .checked_mul(size)
            .and_then(|n| n.checked_add(offset))
            .ok_or_else(|| invalid(format!("{len} elements of {size} bytes do not fit in memory")))?;
        let have = self.len()?;
        if have < bytes {
            return Err(self.context(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{have} bytes, smaller than the {bytes} of {len} elements of {size} from byte {offset}"
                ),
            )));
        }
        let mapping = Mapping::new(self, bytes)?;
        let guard = Guard::new(mapping.as_ptr(), mapping.len()).map_err(|e| self.context(e))?;
        let mapped = Rc::new(Mapped { guard, mapping, name: self.name().to_string() });
        Ok(SharedArray { mapped, offset, len, _type: PhantomData })
    }
}

impl<T: Element> SharedArray<T> {
    /// How many elements it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements in `range` (`2..5`, `..n`, `3..`), as an array of their
    /// own that shares this one's mapping: index 0 of the slice is
    /// `range.start` of this array. `InvalidInput` if the range is not in
    /// `0..len()`.
    pub fn slice(&self, range: impl RangeBounds<usize>) -> io::Result<SharedArray<T>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => Some(i),
            Bound::Excluded(&i) => i.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.checked_add(1),
            Bound::Excluded(&i) => Some(i),
            Bound::Unbounded => Some(self.len),
        };
        match (start, end) {
            (Some(start), Some(end)) if start <= end && end <= self.len => Ok(SharedArray {
                mapped: Rc::clone(&self.mapped),
                offset: self.offset + start * mem::size_of::<T>(),
                len: end - start,
                _type: PhantomData,
            }),
            _ => Err(self.error(
                io::ErrorKind::InvalidInput,
                format!("{:?}..{:?} is not a range of an array of {} elements", start, end, self.len),
            )),
        }
    }

    /// Whether it may be stored to (the object was opened read-write).
    pub fn is_writable(&self) -> bool {
        self.mapped.mapping.is_writable()
    }

    /// Element `index`, or `InvalidInput` if it is out of bounds.
    fn element(&self, index: usize) -> io::Result<*mut T> {
        if index >= self.len {
            return Err(self.error(
                io::ErrorKind::InvalidInput,
                format!("index {index} is out of bounds of an array of {} elements", self.len),
            ));
        }
        // SAFETY: `offset + index * size` is inside the mapping, which `array_at` sized for `len` elements.
        Ok(unsafe { self.mapped.mapping.as_ptr().add(self.offset + index * mem::size_of::<T>()) }.cast())
    }

    /// Element `index`, to be stored to.
    fn element_mut(&self, index: usize) -> io::Result<*mut T> {
        if !self.is_writable() {
            return Err(self.error(
                io::ErrorKind::PermissionDenied,
                "opened read-only: its elements cannot be stored to".to_string(),
            ));
        }
        self.element(index)
    }

    /// `value`, unless the object shrank under the mapping before or during
    /// the access that gave it.
    fn checked<R>(&self, value: R) -> io::Result<R> {
        if self.mapped.guard.tampered() {
            return Err(self.error(
                io::ErrorKind::InvalidData,
                "another process shrank it under this array (ftruncate): its elements are gone \
                 from this mapping, which now holds zeros; open the object again"
                    .to_string(),
            ));
        }
        Ok(value)
    }

    fn error(&self, kind: io::ErrorKind, message: String) -> io::Error {
        context(format!("shared memory object {}", self.mapped.name), io::Error::new(kind, message))
    }
}

impl<T: Plain> SharedArray<T> {
    /// A copy of element `index` as it is now (a volatile read: never a
    /// value the compiler kept from before).
    pub fn get(&self, index: usize) -> io::Result<T> {
        let element = self.element(index)?;
        // SAFETY: in bounds and aligned (`array_at` checked the offset; the mapping is page-aligned);
        // any bytes are a valid `T`; a fault on a shrunk object is handled by the guard.
        let value = unsafe { ptr::read_volatile(element) };
        self.checked(value)
    }

    /// Stores `value` as element `index` (a volatile write).
    /// `PermissionDenied` if the object was opened read-only.
    pub fn set(&self, index: usize, value: T) -> io::Result<()> {
        let element = self.element_mut(index)?;
        // SAFETY: as in `get`, and the mapping is writable.
        unsafe { ptr::write_volatile(element, value) };
        self.checked(())
    }
}

impl<T: Atomic> SharedArray<T> {
    /// Lends element `index` to `f`, and returns what `f` returns: an
    /// atomic operation on a value that other processes change at once,
    /// `counters.with(0, |c| c.fetch_add(1, Ordering::Relaxed))?`.
    /// `PermissionDenied` if the object was opened read-only (an atomic
    /// store there would fault).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use ipc::SharedMemory;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let name = format!("/ipc-doc-atomic-{}", std::process::id());
    /// let shm = SharedMemory::create(&name, 8, 0o600)?.remove_on_drop();
    /// let count = |name: String| move || -> std::io::Result<()> {
    ///     // Each process (a thread here) opens the object and makes its own array.
    ///     let counters = SharedMemory::open(&name, true)?.array::<AtomicU64>(1)?;
    ///     for _ in 0..1000 {
    ///         counters.with(0, |c| c.fetch_add(1, Ordering::Relaxed))?;
    ///     }
    ///     Ok(())
    /// };
    /// let (a, b) = (std::thread::spawn(count(name.clone())), std::thread::spawn(count(name.clone())));
    /// a.join().expect("a")?;
    /// b.join().expect("b")?;
    /// assert_eq!(shm.array::<AtomicU64>(1)?.with(0, |c| c.load(Ordering::Relaxed))?, 2000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with<R>(&self, index: usize, f: impl FnOnce(&T) -> R) -> io::Result<R> {
        let element = self.element_mut(index)?;
        // SAFETY: in bounds, aligned and writable; an atomic's every bit pattern is valid, and
        // atomics may be shared; the reference does not outlive `f`, and a fault is handled by the guard.
        let result = f(unsafe { &*element });
        self.checked(result)
    }
}

impl<T: Element> fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedArray")
            .field("name", &self.mapped.name)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}
