//! Tickets from a keytab: MIT's credential store extension (`gss_acquire_cred_from` with
//! `client_keytab`), which libgssapi does not wrap, called through `libgssapi-sys`.
//!
//! Why this and not `krb5_get_init_creds_keytab`: the credential store keeps the whole job inside
//! GSSAPI (the same library, krb5.conf and error codes as every other logon here), needs no
//! second FFI surface into libkrb5, and MIT refreshes the TGT from the keytab by itself when it
//! runs out during a long rollout.
//!
//! The tickets go to a `MEMORY:` cache named after the principal and keytab: they live in this
//! process only (nothing is written to disk, nothing to clean up), and every host of a run reuses
//! the one TGT instead of asking the KDC for a new one each. Getting the first TGT into that cache
//! while another thread reads it is not safe in MIT, so logons from keytabs take turns (each is a
//! TGS exchange with the KDC, milliseconds).

use std::ffi::CString;
use std::path::Path;
use std::ptr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use libgssapi::credential::Cred;
use libgssapi::error::{Error, MajorFlags};
use libgssapi_sys::{
    GSS_C_INITIATE, GSS_C_NT_USER_NAME, GSS_S_COMPLETE, OM_uint32, gss_OID_set,
    gss_acquire_cred_from, gss_buffer_desc, gss_cred_id_t, gss_cred_usage_t, gss_import_name,
    gss_key_value_element_desc, gss_key_value_set_desc, gss_name_t, gss_release_name,
};
use sha2::{Digest, Sha256};

use super::KerberosError;

static TURNS: Mutex<()> = Mutex::new(());

/// Held from acquiring the credential until the AP-REQ exists (the moment MIT may fill the cache).
pub(super) fn turn() -> MutexGuard<'static, ()> {
    TURNS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Initiator credentials for `principal` from `keytab`, cached in this process's memory.
pub(super) fn acquire(principal: &str, keytab: &Path) -> Result<Cred, KerberosError> {
    let invalid = |detail: String| KerberosError {
        what: "the keytab logon",
        detail,
        hint: None,
    };
    let keytab_text = keytab
        .to_str()
        .ok_or_else(|| invalid(format!("{} is not a UTF-8 path", keytab.display())))?;
    let keytab_c = CString::new(format!("FILE:{keytab_text}"))
        .map_err(|_| invalid("the keytab path holds a NUL byte".into()))?;
    let digest = Sha256::digest(format!("{principal}\0{keytab_text}").as_bytes());
    let ccache_c = CString::new(format!("MEMORY:hive-keytab-{}", hex::encode(&digest[..8])))
        .map_err(|_| invalid("cache name".into()))?;

    let name = import_user_name(principal)?;
    let mut elements = [
        gss_key_value_element_desc {
            key: c"client_keytab".as_ptr(),
            value: keytab_c.as_ptr(),
        },
        gss_key_value_element_desc {
            key: c"ccache".as_ptr(),
            value: ccache_c.as_ptr(),
        },
    ];
    let store = gss_key_value_set_desc {
        count: elements.len() as OM_uint32,
        elements: elements.as_mut_ptr(),
    };
    let mut minor: OM_uint32 = 0;
    let mut cred: gss_cred_id_t = ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `name` is a live name we imported, `store`
    // points at `elements`, whose C strings (`keytab_c`, `ccache_c`, the literals) outlive the
    // call, and `cred`/`minor` are writable locals. A null mechanism set asks for the defaults
    // (the context itself is started for Kerberos only). MIT copies what it keeps.
    let major = unsafe {
        gss_acquire_cred_from(
            &mut minor,
            name.0,
            0xffff_ffff, // GSS_C_INDEFINITE
            ptr::null_mut::<libgssapi_sys::gss_OID_set_desc>() as gss_OID_set,
            GSS_C_INITIATE as gss_cred_usage_t,
            &store,
            &mut cred,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if major != GSS_S_COMPLETE {
        return Err(KerberosError::gss(
            "getting a ticket with the keytab",
            Error {
                major: MajorFlags::from_bits_retain(major),
                minor,
            },
        ));
    }
    // SAFETY: `cred` was just returned by a successful gss_acquire_cred_from and is owned by no
    // one else; `Cred` releases it when dropped.
    Ok(unsafe { Cred::from_c(cred) })
}

/// A GSS name we own, released on drop.
struct OwnedName(gss_name_t);

impl Drop for OwnedName {
    fn drop(&mut self) {
        let mut minor: OM_uint32 = 0;
        // SAFETY: self.0 came from a successful gss_import_name and is released only here.
        unsafe { gss_release_name(&mut minor, &mut self.0) };
    }
}

fn import_user_name(principal: &str) -> Result<OwnedName, KerberosError> {
    let mut buffer = gss_buffer_desc {
        length: principal.len(),
        value: principal.as_ptr() as *mut std::ffi::c_void,
    };
    let mut minor: OM_uint32 = 0;
    let mut name: gss_name_t = ptr::null_mut();
    // SAFETY: `buffer` points at `principal`'s bytes for the call (gss_import_name copies them
    // and never writes through the pointer); GSS_C_NT_USER_NAME is an immutable OID MIT exports;
    // `name` and `minor` are writable locals.
    let major = unsafe { gss_import_name(&mut minor, &mut buffer, GSS_C_NT_USER_NAME, &mut name) };
    if major != GSS_S_COMPLETE {
        return Err(KerberosError::gss(
            "the user principal name",
            Error {
                major: MajorFlags::from_bits_retain(major),
                minor,
            },
        ));
    }
    Ok(OwnedName(name))
}
