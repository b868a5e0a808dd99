//! hive-smb: copies files to and reads files from Windows hosts over SMB2/3, and knows nothing of
//! patching.
//!
//! Why a crate of its own: the published `smb` crate (afiffon/smb-rs 0.12) hangs and can report
//! success on a failed copy (see `README.md`); hive carries a fixed copy of it under `vendor/`, and
//! this crate adds what a fleet copy needs on top: a timeout around every SMB call, uploads that
//! are verified by reading them back and hashing, uploads that resume after a broken connection,
//! a bounded number of simultaneous connection set-ups, and errors that name the host and path.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hive_smb::SmbError> {
//! use hive_smb::{Credentials, SmbConfig, SmbShare};
//! let creds = Credentials::password("Administrator", "secret");
//! let share = SmbShare::connect("10.0.0.5", 445, "ADMIN$", &creds, &SmbConfig::default()).await?;
//! share.create_dir_all("hive/staging").await?;
//! let report = share.upload("KB5034441.msu".as_ref(), "hive/staging/KB5034441.msu").await?;
//! println!("{} bytes, sha256 {}", report.bytes, report.sha256_hex());
//! # Ok(()) }
//! ```

mod config;
mod connect;
mod error;
mod path;
mod share;
mod transfer;

pub use config::{Credentials, SmbConfig};
pub use error::{SmbError, nt_status};
pub use path::RemotePath;
pub use share::{DirEntry, Metadata, SmbShare};
pub use transfer::{DownloadReport, HeldUpload, SentReport, UploadReport};
