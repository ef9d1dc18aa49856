//! POSIX named semaphores: `sem_open`, `sem_wait`, `sem_trywait`,
//! `sem_timedwait`, `sem_post`, `sem_close`, `sem_unlink`.
//!
//! A semaphore has no descriptor to give epoll: a thread blocked in
//! [`NamedSemaphore::wait`] is how an event loop learns of a post (send what
//! it got to the loop through a channel or an eventfd).

use std::ffi::CString;
use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::name::{c_name, dev_shm, NAME_MAX};
use crate::open::{self, drop_name, file_is, removable};
use crate::sys::{context, cvt, explain_named, realtime_deadline, retry};
use crate::ObjectInfo;

/// An open named semaphore, closed (`sem_close`) on drop, and its name
/// removed too if it was told to ([`remove_on_drop`](Self::remove_on_drop),
/// and [`create_or_open`](Self::create_or_open) for the one it created). It
/// may be used from several threads at once.
///
/// ```
/// use std::time::Duration;
/// use ipc::NamedSemaphore;
///
/// # fn main() -> std::io::Result<()> {
/// let name = format!("/ipc-doc-sem-{}", std::process::id());
/// let sem = NamedSemaphore::create(&name, 0o600, 1)?;
/// assert!(sem.try_wait()?);                       // 1 -> 0
/// assert!(!sem.try_wait()?);                      // would wait
/// assert!(!sem.wait_timeout(Duration::from_millis(10))?);
/// sem.post()?;                                    // 0 -> 1
/// assert_eq!(sem.value()?, 1);
/// NamedSemaphore::unlink(&name)?;
/// # Ok(())
/// # }
/// ```
pub struct NamedSemaphore {
    sem: *mut libc::sem_t,
    name: String,
    /// The device and inode of its file when it was opened.
    identity: Option<(u64, u64)>,
    remove_on_drop: bool,
}

// SAFETY: the sem_* calls are thread-safe on one `sem_t`, which stays mapped until drop.
unsafe impl Send for NamedSemaphore {}
// SAFETY: as above; every method takes `&self` and is a single thread-safe call.
unsafe impl Sync for NamedSemaphore {}

impl NamedSemaphore {
    /// Creates the semaphore `name`, which must not exist
    /// (`O_CREAT|O_EXCL`), holding `value`, with exactly `mode` (the umask
    /// takes nothing away). Its name may be at most 251 bytes after the
    /// slash: its file is `/dev/shm/sem.NAME`. It is created with mode 0,
    /// then given `mode` (`chmod` of its file): until then other users
    /// cannot open it, and [`create_or_open`](Self::create_or_open) waits.
    pub fn create(name: &str, mode: libc::mode_t, value: u32) -> io::Result<NamedSemaphore> {
        let c_name = sem_name(name)?;
        // SAFETY: `c_name` is NUL-terminated; O_CREAT reads the mode and the value.
        let sem = unsafe {
            libc::sem_open(c_name.as_ptr(), libc::O_CREAT | libc::O_EXCL, 0 as libc::mode_t, value)
        };
        let sem = NamedSemaphore::checked(sem, name)?;
        let path = sem.path();
        if let Err(e) = std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode)) {
            let _ = NamedSemaphore::unlink(name);
            return Err(context(format!("semaphore {name}: chmod {path}"), e));
        }
        Ok(sem)
    }

    /// Creates the semaphore `name` as [`create`](Self::create) does, or
    /// opens it if it exists (its value then stays as it is); `true` with
    /// it if this call created it. The semaphore created is told to
    /// [`remove_on_drop`](Self::remove_on_drop); the one opened is not. An
    /// opener waits, up to 2 seconds, for a creator that has not given it
    /// its mode yet; mode 0 is refused (`InvalidInput`).
    ///
    /// ```
    /// use ipc::NamedSemaphore;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let name = format!("/ipc-doc-sem-create-or-open-{}", std::process::id());
    /// let (lock, created) = NamedSemaphore::create_or_open(&name, 0o600, 1)?;
    /// assert!(created);
    /// lock.wait()?;
    ///
    /// // Another process (a thread here) opens the same one and waits for its token.
    /// let other = std::thread::spawn({
    ///     let name = name.clone();
    ///     move || -> std::io::Result<bool> {
    ///         let (lock, created) = NamedSemaphore::create_or_open(&name, 0o600, 1)?;
    ///         lock.wait()?;
    ///         lock.post()?;
    ///         Ok(created)
    ///     }
    /// });
    /// lock.post()?;
    /// assert!(!other.join().expect("the opener")?, "the second call opened it");
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_or_open(name: &str, mode: libc::mode_t, value: u32) -> io::Result<(NamedSemaphore, bool)> {
        let file = dev_shm(&format!("sem.{}", name.get(1..).unwrap_or_default()));
        let (mut sem, created) = open::create_or_open(
            &format!("semaphore {name}"),
            mode,
            Some(&file),
            || NamedSemaphore::create(name, mode, value),
            || NamedSemaphore::open(name),
            |sem| sem.info().map(|info| info.mode != 0),
        )?;
        sem.remove_on_drop = created;
        Ok((sem, created))
    }

    /// Opens the existing semaphore `name`.
    pub fn open(name: &str) -> io::Result<NamedSemaphore> {
        let c_name = sem_name(name)?;
        // SAFETY: `c_name` is NUL-terminated; without O_CREAT no more arguments are read.
        let sem = unsafe { libc::sem_open(c_name.as_ptr(), 0) };
        NamedSemaphore::checked(sem, name)
    }

    fn checked(sem: *mut libc::sem_t, name: &str) -> io::Result<NamedSemaphore> {
        if sem == libc::SEM_FAILED {
            return Err(explain(name, io::Error::last_os_error()));
        }
        let mut sem = NamedSemaphore { sem, name: name.to_string(), identity: None, remove_on_drop: false };
        sem.identity = sem.info().ok().map(|info| info.identity);
        Ok(sem)
    }

    /// Whether `name` still names the semaphore opened: false when it was
    /// removed, or removed and made anew. (Its file is compared with the
    /// one found just after `sem_open`.)
    pub fn is_still_named(&self) -> io::Result<bool> {
        let Some(identity) = self.identity else { return Ok(false) };
        file_is(Path::new(&self.path()), identity).map_err(|e| self.context(e))
    }

    /// Removes the name; the semaphore lives on while it is open.
    pub fn unlink(name: &str) -> io::Result<()> {
        let c_name = sem_name(name)?;
        // SAFETY: `c_name` is NUL-terminated.
        cvt(unsafe { libc::sem_unlink(c_name.as_ptr()) }).map(drop).map_err(|e| explain(name, e))
    }

    /// The name it was opened by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `sem_t` that glibc maps from the semaphore's file: the start of
    /// a shared mapping of one page. (A process allowed to open the
    /// semaphore may shrink that file, and the next access then faults
    /// with `SIGBUS`; a program that must survive that watches this page.)
    pub fn as_ptr(&self) -> *mut libc::sem_t {
        self.sem
    }

    /// Its file: `/dev/shm/sem.NAME`.
    pub fn path(&self) -> String {
        dev_shm(&format!("sem.{}", &self.name[1..])).display().to_string()
    }

    /// Owner, mode and identity of its file, as they are now (the name may
    /// have been removed or replaced since it was opened).
    pub fn info(&self) -> io::Result<ObjectInfo> {
        let path = self.path();
        let meta =
            std::fs::metadata(&path).map_err(|e| context(format!("semaphore {}: {path}", self.name), e))?;
        Ok(ObjectInfo::from_metadata(&meta))
    }

    /// `sem_wait`: takes one token, waiting while there is none.
    pub fn wait(&self) -> io::Result<()> {
        // SAFETY: the semaphore is open until drop.
        retry(|| cvt(unsafe { libc::sem_wait(self.sem) })).map(drop).map_err(|e| self.context(e))
    }

    /// `sem_trywait`: takes one token if there is one; `false` if not.
    pub fn try_wait(&self) -> io::Result<bool> {
        // SAFETY: the semaphore is open until drop.
        match retry(|| cvt(unsafe { libc::sem_trywait(self.sem) })) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(self.context(e)),
        }
    }

    /// `sem_timedwait`: takes one token, waiting at most `timeout`; `false`
    /// if none came.
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<bool> {
        let deadline = realtime_deadline(timeout)?;
        // SAFETY: the semaphore is open until drop; `deadline` lives across the call.
        match retry(|| cvt(unsafe { libc::sem_timedwait(self.sem, &deadline) })) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(false),
            Err(e) => Err(self.context(e)),
        }
    }

    /// `sem_post`: gives one token back (or a first one).
    pub fn post(&self) -> io::Result<()> {
        // SAFETY: the semaphore is open until drop.
        cvt(unsafe { libc::sem_post(self.sem) }).map(drop).map_err(|e| self.context(e))
    }

    /// `sem_getvalue`: the tokens it holds now (0 when some wait).
    pub fn value(&self) -> io::Result<u32> {
        let mut value = 0;
        // SAFETY: the semaphore is open until drop; `value` is writable.
        cvt(unsafe { libc::sem_getvalue(self.sem, &mut value) }).map_err(|e| self.context(e))?;
        Ok(value.max(0) as u32)
    }

    fn context(&self, e: io::Error) -> io::Error {
        context(format!("semaphore {}", self.name), e)
    }
}

impl fmt::Debug for NamedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedSemaphore")
            .field("name", &self.name)
            .field("remove_on_drop", &self.remove_on_drop)
            .finish()
    }
}

removable!(NamedSemaphore, "sem_unlink", create: "create(&name, 0o600, 0)", open: "open(&name)");

impl Drop for NamedSemaphore {
    fn drop(&mut self) {
        drop_name(self);
        // SAFETY: the semaphore is open, and nothing uses it after this.
        unsafe { libc::sem_close(self.sem) };
    }
}

/// A semaphore's name: the common rule, and four bytes shorter (its file is `sem.NAME`).
fn sem_name(name: &str) -> io::Result<CString> {
    let c_name = c_name("semaphore", name)?;
    if name.len() - 1 + "sem.".len() > NAME_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("semaphore name '{name}': is longer than 251 bytes (its file is sem.NAME)"),
        ));
    }
    Ok(c_name)
}

/// `sem_open` and `sem_unlink`: what each errno means for the user.
fn explain(name: &str, e: io::Error) -> io::Error {
    explain_named("semaphore", name, e)
}
