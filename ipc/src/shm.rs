//! POSIX shared memory: `shm_open`, `ftruncate`, `mmap`, `shm_unlink`.
//!
//! A [`SharedMemory`] is the object's descriptor (there is no `shm_close`:
//! dropping it closes the descriptor). Its bytes can be mapped
//! ([`SharedMemory::map`], [`SharedMemory::view`]) or read and written
//! at an offset ([`SharedMemory::read_at`], [`SharedMemory::write_at`]).
//!
//! A mapping faults with `SIGBUS` if another process shrinks the object
//! under it (`ftruncate`); `read_at` and `write_at` cannot: they fail or
//! come back short instead. A program that must survive what other
//! processes do to the object uses those.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::{self, NonNull};

use crate::name::{c_name, dev_shm};
use crate::open::{self, drop_name, file_is, removable};
use crate::sys::{context, cvt, explain_named, fchmod, retry};
use crate::{ObjectInfo, Plain};

/// A shared memory object, open; its descriptor is closed on drop, and its
/// name removed too if it was told to ([`remove_on_drop`](Self::remove_on_drop),
/// and [`create_or_open`](Self::create_or_open) for the object it created).
/// That is the drop of the `SharedMemory`, not of its mappings and arrays,
/// which outlive it: keep it as long as others should find the name.
///
/// ```
/// use ipc::{Plain, SharedMemory};
///
/// #[repr(C)]
/// #[derive(Clone, Copy, Default, Debug, PartialEq)]
/// struct Counter { value: u64, writer: u32, _pad: u32 }
/// // SAFETY: plain integers, no padding the compiler could choose: any bytes are a valid `Counter`.
/// unsafe impl Plain for Counter {}
///
/// # fn main() -> std::io::Result<()> {
/// let name = format!("/ipc-doc-shm-{}", std::process::id());
/// let shm = SharedMemory::create(&name, std::mem::size_of::<Counter>(), 0o600)?;
/// let view = shm.view::<Counter>()?;
/// view.write(Counter { value: 41, writer: 1, _pad: 0 });
///
/// let other = SharedMemory::open(&name, false)?; // as another process would
/// assert_eq!(other.view::<Counter>()?.read().value, 41);
/// SharedMemory::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
pub struct SharedMemory {
    fd: OwnedFd,
    name: String,
    writable: bool,
    remove_on_drop: bool,
}

impl SharedMemory {
    /// Creates the object `name`, which must not exist (`O_CREAT|O_EXCL`),
    /// read-write, `size` bytes of zeros, with exactly `mode` (the umask
    /// takes nothing away). It is created with mode 0, sized, then given
    /// `mode`: until then other users cannot open it, and
    /// [`create_or_open`](Self::create_or_open) waits for it. If a step
    /// fails, the name is removed again.
    pub fn create(name: &str, size: usize, mode: libc::mode_t) -> io::Result<SharedMemory> {
        let shm = SharedMemory::open_flags(name, libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0)?;
        let made =
            shm.set_len(size).and_then(|()| fchmod(shm.fd.as_raw_fd(), mode).map_err(|e| shm.context(e)));
        if made.is_err() {
            let _ = SharedMemory::unlink(name);
        }
        made.map(|()| shm)
    }

    /// Creates the object `name` as [`create`](Self::create) does, or opens
    /// it read-write if it exists; `true` with it if this call created it.
    /// The object created is told to [`remove_on_drop`](Self::remove_on_drop);
    /// the one opened is not. An opener never gets an object that its
    /// creator has not finished: it waits for it, up to 2 seconds
    /// (`TimedOut` after that: the creator may have died between
    /// `shm_open` and `ftruncate`). `InvalidData` if the object is smaller
    /// than `size`; mode 0 and size 0 are refused (`InvalidInput`).
    ///
    /// ```
    /// use ipc::SharedMemory;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let name = format!("/ipc-doc-create-or-open-{}", std::process::id());
    /// let (first, created) = SharedMemory::create_or_open(&name, 4096, 0o600)?;
    /// assert!(created && first.removes_on_drop());
    ///
    /// // Another process (a thread here) asks the same, and opens it.
    /// let other = std::thread::spawn({
    ///     let name = name.clone();
    ///     move || {
    ///         let (shm, created) = SharedMemory::create_or_open(&name, 4096, 0o600)?;
    ///         Ok::<_, std::io::Error>((created, shm.removes_on_drop()))
    ///     }
    /// });
    /// assert_eq!(other.join().expect("the opener")?, (false, false));
    /// drop(first); // the creator's drop removes the name
    /// assert!(SharedMemory::open(&name, false).is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_or_open(name: &str, size: usize, mode: libc::mode_t) -> io::Result<(SharedMemory, bool)> {
        if size == 0 {
            let why = "a size of 0 is refused: an opener could not tell the object from one not sized yet";
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("shared memory object {name}: {why}"),
            ));
        }
        let file = dev_shm(name.get(1..).unwrap_or_default());
        let (mut shm, created) = open::create_or_open(
            &format!("shared memory object {name}"),
            mode,
            Some(&file),
            || SharedMemory::create(name, size, mode),
            || SharedMemory::open(name, true),
            |shm| shm.info().map(|info| info.mode != 0 && info.size > 0),
        )?;
        let len = shm.len()?;
        if len < size {
            return Err(shm.context(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{len} bytes, smaller than the {size} asked for: another program made it"),
            )));
        }
        shm.remove_on_drop = created;
        Ok((shm, created))
    }

    /// Opens the existing object `name`, read-write or read-only.
    pub fn open(name: &str, writable: bool) -> io::Result<SharedMemory> {
        SharedMemory::open_flags(name, if writable { libc::O_RDWR } else { libc::O_RDONLY }, 0)
    }

    fn open_flags(name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<SharedMemory> {
        let c_name = c_name("shared memory object", name)?;
        // SAFETY: `c_name` is NUL-terminated; the mode is read only with O_CREAT.
        let raw = cvt(unsafe { libc::shm_open(c_name.as_ptr(), flags | libc::O_CLOEXEC, mode) })
            .map_err(|e| explain(name, e))?;
        // SAFETY: `shm_open` just returned this descriptor; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let writable = flags & libc::O_ACCMODE == libc::O_RDWR;
        Ok(SharedMemory { fd, name: name.to_string(), writable, remove_on_drop: false })
    }

    /// Whether `name` still names the object this descriptor has open:
    /// false when it was removed, or removed and made anew.
    pub fn is_still_named(&self) -> io::Result<bool> {
        let file = dev_shm(&self.name[1..]);
        file_is(&file, self.info()?.identity).map_err(|e| self.context(e))
    }

    /// Removes the name; the object lives on while it is open or mapped.
    pub fn unlink(name: &str) -> io::Result<()> {
        let c_name = c_name("shared memory object", name)?;
        // SAFETY: `c_name` is NUL-terminated.
        cvt(unsafe { libc::shm_unlink(c_name.as_ptr()) }).map(drop).map_err(|e| explain(name, e))
    }

    /// The name it was opened by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its size in bytes now (another process may change it).
    pub fn len(&self) -> io::Result<usize> {
        Ok(self.info()?.size as usize)
    }

    /// Whether it holds no bytes (as it does after `shm_open` creates it).
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// `ftruncate`: sets the size; new bytes are zeros.
    pub fn set_len(&self, size: usize) -> io::Result<()> {
        let size =
            libc::off_t::try_from(size).map_err(|_| self.context(io::ErrorKind::InvalidInput.into()))?;
        // SAFETY: plain call on an open descriptor.
        cvt(unsafe { libc::ftruncate(self.fd.as_raw_fd(), size) }).map(drop).map_err(|e| self.context(e))
    }

    /// Owner, mode, size and identity (`fstat`).
    pub fn info(&self) -> io::Result<ObjectInfo> {
        ObjectInfo::of(self.fd.as_raw_fd()).map_err(|e| self.context(e))
    }

    /// `pread`: up to `buf.len()` bytes from `offset`; fewer (or 0) where the
    /// object ends. Never faults, whatever its size.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let offset = offset as libc::off_t;
        retry(|| {
            // SAFETY: `buf` is writable for its length.
            cvt(unsafe { libc::pread(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset) })
        })
        .map(|n| n as usize)
        .map_err(|e| self.context(e))
    }

    /// `pwrite`: all of `bytes` at `offset`, growing the object if it is
    /// shorter. Never faults, whatever another process did to its size.
    pub fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while done < bytes.len() {
            let at = (offset + done as u64) as libc::off_t;
            let rest = &bytes[done..];
            let n = retry(|| {
                // SAFETY: `rest` is readable for its length.
                cvt(unsafe { libc::pwrite(self.fd.as_raw_fd(), rest.as_ptr().cast(), rest.len(), at) })
            })
            .map_err(|e| self.context(e))?;
            done += n as usize;
        }
        Ok(())
    }

    /// Maps the whole object (its size now), shared: what one process
    /// stores, the others see. Read-only if the object was opened so.
    pub fn map(&self) -> io::Result<Mapping> {
        Mapping::new(self, self.len()?)
    }

    /// A typed view of the object's first `size_of::<T>()` bytes: for a
    /// `#[repr(C)]` struct that several processes share. Fails if the
    /// object is smaller.
    pub fn view<T: Plain>(&self) -> io::Result<View<T>> {
        let size = mem::size_of::<T>();
        let len = self.len()?;
        if len < size {
            return Err(self.context(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{len} bytes, smaller than the {size} of the view"),
            )));
        }
        Ok(View { mapping: Mapping::new(self, size)?, _type: PhantomData })
    }

    pub(crate) fn context(&self, e: io::Error) -> io::Error {
        context(format!("shared memory object {}", self.name), e)
    }
}

removable!(SharedMemory, "shm_unlink", create: "create(&name, 64, 0o600)", open: "open(&name, false)");

impl Drop for SharedMemory {
    fn drop(&mut self) {
        drop_name(self);
    }
}

impl AsFd for SharedMemory {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("fd", &self.fd)
            .field("remove_on_drop", &self.remove_on_drop)
            .finish()
    }
}

/// `shm_open` and `shm_unlink`: what each errno means for the user.
fn explain(name: &str, e: io::Error) -> io::Error {
    explain_named("shared memory object", name, e)
}

/// A shared mapping, unmapped on drop. It stays valid after the object's
/// descriptor is closed.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

impl Mapping {
    pub(crate) fn new(shm: &SharedMemory, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(shm.context(io::Error::new(io::ErrorKind::InvalidInput, "cannot map 0 bytes")));
        }
        let prot = if shm.writable { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_READ };
        // SAFETY: a fresh shared mapping chosen by the kernel; no existing memory is touched.
        let ptr = unsafe { libc::mmap(ptr::null_mut(), len, prot, libc::MAP_SHARED, shm.fd.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            return Err(shm.context(io::Error::last_os_error()));
        }
        let ptr =
            NonNull::new(ptr.cast()).ok_or_else(|| shm.context(io::ErrorKind::AddrNotAvailable.into()))?;
        Ok(Mapping { ptr, len, writable: shm.writable })
    }

    /// The first byte; valid for [`len`](Self::len) bytes until drop.
    /// Other processes may change the bytes at any time: read and write
    /// them with volatile or atomic accesses, under a semaphore.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether its bytes may be stored to (the object was opened read-write).
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Always false: an empty mapping cannot be made.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("writable", &self.writable)
            .finish()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our mapping of exactly `len` bytes; nothing refers to it after this.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A `T` in shared memory, read and written whole with volatile accesses
/// (the compiler may not cache what another process changes). Guard a
/// read or write with a [`NamedSemaphore`](crate::NamedSemaphore) when a
/// torn value matters.
pub struct View<T: Plain> {
    mapping: Mapping,
    _type: PhantomData<T>,
}

impl<T: Plain> View<T> {
    /// A copy of the value as it is now.
    pub fn read(&self) -> T {
        // SAFETY: the mapping holds `size_of::<T>()` bytes, page-aligned, and any bytes are a valid `T`.
        unsafe { ptr::read_volatile(self.mapping.as_ptr().cast::<T>()) }
    }

    /// Stores `value`. Panics if the object was opened read-only: that
    /// mapping cannot be written.
    pub fn write(&self, value: T) {
        assert!(self.mapping.writable, "View::write on a read-only shared memory object");
        // SAFETY: as in `read`; the store cannot fault on a writable mapping.
        unsafe { ptr::write_volatile(self.mapping.as_ptr().cast::<T>(), value) }
    }
}

impl<T: Plain> fmt::Debug for View<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View").field("mapping", &self.mapping).finish()
    }
}
