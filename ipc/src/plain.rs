//! [`Plain`]: the types that may be read from memory another process
//! writes, and [`plain!`](crate::plain!), which declares one without `unsafe`.

/// Types that any bytes are a valid value of, with no pointers and no
/// padding the compiler chooses: `#[repr(C)]` structs of integers, arrays
/// of them. Another process writes these bytes, so nothing else is safe to
/// read from shared memory. A struct of such fields is declared with
/// [`plain!`](crate::plain!), which checks both rules and needs no `unsafe`.
///
/// # Safety
/// Every bit pattern of `size_of::<Self>()` bytes must be a valid `Self`.
pub unsafe trait Plain: Copy {}

macro_rules! plain_numbers {
    ($($number:ty),*) => {$(
        // SAFETY: every bit pattern is a valid integer, or float (some are NaNs).
        unsafe impl Plain for $number {}
    )*};
}

plain_numbers!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64);

// SAFETY: an array of plain values is plain.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}

/// Declares a `#[repr(C)]` struct of [`Plain`] fields that is itself
/// `Plain`, `Clone` and `Copy`, without `unsafe`: the build fails if a
/// field is not `Plain` or if the fields leave padding between them or at
/// the end (order them largest first, or add a field that fills the gap).
/// Attributes and doc comments pass through.
///
/// ```
/// ipc::plain! {
///     /// One slot of a ring that two processes share.
///     #[derive(Debug, Default, PartialEq)]
///     pub struct Slot {
///         pub sequence: u64,
///         pub length: u32,
///         pub sender: u32,
///         pub text: [u8; 32],
///     }
/// }
///
/// # fn main() -> std::io::Result<()> {
/// let name = format!("/ipc-doc-plain-{}", std::process::id());
/// assert_eq!(std::mem::size_of::<Slot>(), 48);
/// let shm = ipc::SharedMemory::create(&name, 4 * 48, 0o600)?.remove_on_drop();
/// let ring = shm.array::<Slot>(4)?;
/// let mut slot = Slot { sequence: 1, length: 2, ..Slot::default() };
/// slot.text[..2].copy_from_slice(b"hi");
/// ring.set(1, slot)?;
/// // Another process (a thread here) reads it through its own mapping.
/// let read = std::thread::spawn(move || -> std::io::Result<Slot> {
///     ipc::SharedMemory::open(&name, false)?.array::<Slot>(4)?.get(1)
/// });
/// assert_eq!(&read.join().expect("the reader")?.text[..2], b"hi");
/// # Ok(())
/// # }
/// ```
///
/// A struct with padding does not build:
///
/// ```compile_fail
/// ipc::plain! {
///     struct Padded { small: u8, large: u64 }
/// }
/// ```
#[macro_export]
macro_rules! plain {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident { $($(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty),* $(,)? }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy)]
        $vis struct $name { $($(#[$fmeta])* $fvis $field: $ty),* }

        const _: () = {
            fn fields_are_plain() where $($ty: $crate::Plain),* {}
            assert!(
                ::core::mem::size_of::<$name>() == 0 $(+ ::core::mem::size_of::<$ty>())*,
                concat!(
                    "plain! ",
                    stringify!($name),
                    ": its fields leave padding; order them largest first or fill the gap"
                ),
            );
        };

        // SAFETY: `#[repr(C)]`, every field `Plain`, no padding (both checked above): any bytes are valid.
        unsafe impl $crate::Plain for $name {}
    };
}
