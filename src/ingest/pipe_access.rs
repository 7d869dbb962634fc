//! Who may open the named pipe: a security descriptor that lets SYSTEM,
//! Administrators, the pipe's owner (the account the daemon runs as) and
//! the accounts in `[daemon] pipe_clients` read and write it, and denies
//! every network logon. (The pipe also refuses remote clients itself:
//! tokio creates it with `PIPE_REJECT_REMOTE_CLIENTS`.)

use std::ffi::c_void;
use std::io;
use std::ptr;

use windows_sys::Win32::Foundation::LocalFree;
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{LookupAccountNameW, SECURITY_ATTRIBUTES};

/// Deny network logons (NU) everything; give SYSTEM (SY), Administrators
/// (BA) and the owner (OW) full access. Protected (P): nothing is inherited.
const BASE_SDDL: &str = "D:P(D;;GA;;;NU)(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;OW)";

/// The descriptor in the form `CreateNamedPipeW` takes it. It is built once
/// and only read afterwards; its memory is freed on drop.
pub struct PipeAccess {
    attributes: Box<SECURITY_ATTRIBUTES>,
}

// SAFETY: the descriptor is never changed after `new`; Windows only reads it.
unsafe impl Send for PipeAccess {}
// SAFETY: as above: shared references only read it.
unsafe impl Sync for PipeAccess {}

impl PipeAccess {
    /// The descriptor for `clients`: account names (`DOMAIN\name`, a local
    /// name, `NT SERVICE\name`) or SIDs (`S-1-5-…`).
    pub fn new(clients: &[String]) -> io::Result<PipeAccess> {
        let mut sddl = BASE_SDDL.to_owned();
        for client in clients {
            // Read and write: what a client needs to send events and read
            // the replies.
            sddl.push_str(&format!("(A;;GRGW;;;{})", sid_of(client)?));
        }
        let text = wide(&sddl);
        let mut descriptor = ptr::null_mut();
        // SAFETY: `text` is NUL-terminated; on success `descriptor` points
        // to memory from LocalAlloc, freed in `drop`.
        let converted = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                text.as_ptr(),
                SDDL_REVISION_1,
                &mut descriptor,
                ptr::null_mut(),
            )
        };
        if converted == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PipeAccess {
            attributes: Box::new(SECURITY_ATTRIBUTES {
                nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
                lpSecurityDescriptor: descriptor,
                bInheritHandle: 0,
            }),
        })
    }

    /// For `ServerOptions::create_with_security_attributes_raw`, which only
    /// reads through it.
    pub fn attributes(&self) -> *mut c_void {
        ptr::from_ref::<SECURITY_ATTRIBUTES>(&self.attributes)
            .cast_mut()
            .cast()
    }
}

impl Drop for PipeAccess {
    fn drop(&mut self) {
        // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
        unsafe { LocalFree(self.attributes.lpSecurityDescriptor) };
    }
}

/// The SID of `account`, as SDDL writes it (`S-1-5-…`).
fn sid_of(account: &str) -> io::Result<String> {
    if account.starts_with("S-1-") && account[4..].chars().all(|c| c.is_ascii_digit() || c == '-') {
        return Ok(account.to_owned());
    }
    let name = wide(account);
    let unknown = || {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "pipe_clients: no account {account:?} ({})",
                io::Error::last_os_error()
            ),
        )
    };
    let (mut sid_bytes, mut domain_chars, mut kind) = (0u32, 0u32, 0);
    // SAFETY: without buffers, the call only reports the sizes they need.
    unsafe {
        LookupAccountNameW(
            ptr::null(),
            name.as_ptr(),
            ptr::null_mut(),
            &mut sid_bytes,
            ptr::null_mut(),
            &mut domain_chars,
            &mut kind,
        )
    };
    if sid_bytes == 0 {
        return Err(unknown());
    }
    // u32s: a SID's sub-authorities are 32-bit, so it wants that alignment.
    let mut sid = vec![0u32; (sid_bytes as usize).div_ceil(4)];
    let mut domain = vec![0u16; domain_chars as usize];
    // SAFETY: the buffers have the sizes the first call asked for.
    let found = unsafe {
        LookupAccountNameW(
            ptr::null(),
            name.as_ptr(),
            sid.as_mut_ptr().cast(),
            &mut sid_bytes,
            domain.as_mut_ptr(),
            &mut domain_chars,
            &mut kind,
        )
    };
    if found == 0 {
        return Err(unknown());
    }
    let mut text = ptr::null_mut();
    // SAFETY: `sid` holds a valid SID; on success `text` is a NUL-terminated
    // string from LocalAlloc, freed below.
    if unsafe { ConvertSidToStringSidW(sid.as_mut_ptr().cast(), &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `text` is NUL-terminated (see above).
    let string = unsafe {
        let len = (0..).take_while(|&i| *text.add(i) != 0).count();
        String::from_utf16_lossy(std::slice::from_raw_parts(text, len))
    };
    // SAFETY: allocated by ConvertSidToStringSidW.
    unsafe { LocalFree(text.cast()) };
    Ok(string)
}

/// `text` as a NUL-terminated UTF-16 string.
fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(Some(0)).collect()
}
