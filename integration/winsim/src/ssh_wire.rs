//! The bytes between `winsim-shell` (the real sshd's `ForceCommand`) and the fleet process that
//! holds the host model: one request, then output frames and the exit code.
//!
//! Kept free of any crate but `std`, because the harness compiles `winsim-shell` with a bare
//! `rustc` (no cargo, no build lock, a second or two) and includes this file with `#[path]`; the
//! fleet side uses the same functions, so both ends agree by construction.
//!
//! Request (shell → fleet): `WSH1`, then the command line and the client's stdin, each as a
//! big-endian u32 length and the bytes. The command line is what the SSH client asked sshd to run
//! (`SSH_ORIGINAL_COMMAND`), which Windows OpenSSH hands to `cmd.exe /c`.
//!
//! Answer (fleet → shell): frames of a tag byte, a big-endian u32 length and the payload:
//! `O` stdout bytes, `E` stderr bytes, `X` the exit code (4 bytes, big-endian; always last).

/// First bytes of every request: a version check, so an old shell binary fails loudly.
pub const MAGIC: &[u8; 4] = b"WSH1";

/// The largest command line or stdin accepted (the fleet refuses more rather than buffer without
/// bound; hive's probe script is a few KiB).
pub const MAX_FIELD: usize = 16 * 1024 * 1024;

/// What the shell asks the fleet to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub command: String,
    pub stdin: Vec<u8>,
}

/// One piece of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(u32),
}

/// Why bytes are not a request or a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    BadMagic,
    TooLong(usize),
    NotUtf8,
    UnknownTag(u8),
    BadExitFrame,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::BadMagic => f.write_str("not a winsim-shell request (bad magic)"),
            WireError::TooLong(n) => write!(f, "field of {n} bytes is over the limit"),
            WireError::NotUtf8 => f.write_str("the command line is not UTF-8"),
            WireError::UnknownTag(t) => write!(f, "unknown frame tag {t:#04x}"),
            WireError::BadExitFrame => f.write_str("exit frame without a 4-byte code"),
        }
    }
}

impl std::error::Error for WireError {}

fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A length-prefixed field at `at`, if all of it has arrived.
fn field(buf: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, WireError> {
    let Some(len) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > MAX_FIELD {
        return Err(WireError::TooLong(len));
    }
    Ok(buf.get(at + 4..at + 4 + len).map(|b| (b, at + 4 + len)))
}

/// The request's bytes.
pub fn encode_request(command: &str, stdin: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + command.len() + stdin.len());
    out.extend_from_slice(MAGIC);
    put_field(&mut out, command.as_bytes());
    put_field(&mut out, stdin);
    out
}

/// A request from the front of `buf`: `Ok(None)` while incomplete, else the request and the
/// bytes it took.
pub fn decode_request(buf: &[u8]) -> Result<Option<(Request, usize)>, WireError> {
    let have = buf.len().min(MAGIC.len());
    if buf[..have] != MAGIC[..have] {
        return Err(WireError::BadMagic);
    }
    let Some((command, next)) = field(buf, MAGIC.len())? else {
        return Ok(None);
    };
    let Some((stdin, end)) = field(buf, next)? else {
        return Ok(None);
    };
    let command = std::str::from_utf8(command).map_err(|_| WireError::NotUtf8)?;
    Ok(Some((
        Request {
            command: command.to_string(),
            stdin: stdin.to_vec(),
        },
        end,
    )))
}

/// One frame's bytes.
pub fn encode_frame(frame: &Frame) -> Vec<u8> {
    let (tag, payload): (u8, &[u8]) = match frame {
        Frame::Stdout(b) => (b'O', b),
        Frame::Stderr(b) => (b'E', b),
        Frame::Exit(code) => {
            let mut out = vec![b'X'];
            put_field(&mut out, &code.to_be_bytes());
            return out;
        }
    };
    let mut out = vec![tag];
    put_field(&mut out, payload);
    out
}

/// A frame from the front of `buf`: `Ok(None)` while incomplete, else the frame and its size.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, WireError> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    if !matches!(tag, b'O' | b'E' | b'X') {
        return Err(WireError::UnknownTag(tag));
    }
    let Some((payload, end)) = field(buf, 1)? else {
        return Ok(None);
    };
    let frame = match tag {
        b'O' => Frame::Stdout(payload.to_vec()),
        b'E' => Frame::Stderr(payload.to_vec()),
        _ => {
            let code: [u8; 4] = payload.try_into().map_err(|_| WireError::BadExitFrame)?;
            Frame::Exit(u32::from_be_bytes(code))
        }
    };
    Ok(Some((frame, end)))
}

/// The unix socket of the simulated host at `address` inside the registry folder: the shell
/// finds its host by the address the client connected to, as sshd reports it.
pub fn socket_name(address: &str) -> String {
    format!("{address}.sock")
}

/// The SSH client's address from `SSH_CONNECTION` (`client_ip client_port server_ip
/// server_port`). The fleet's front door connects to sshd from the simulated host's own address,
/// so this names the host.
pub fn client_address(ssh_connection: &str) -> Option<&str> {
    let ip = ssh_connection.split_whitespace().next()?;
    // Only a plain dotted IPv4 address may become a file name.
    let ok = !ip.is_empty() && ip.len() <= 15 && ip.chars().all(|c| c.is_ascii_digit() || c == '.');
    ok.then_some(ip)
}

/// The exit status a Linux sshd can carry: 8 bits. Windows OpenSSH reports the whole DWORD; a code
/// that does not fit becomes 255 and the caller says so on stderr, never a different small code
/// that could pass for success or for another verdict.
pub fn unix_exit_status(code: u32) -> (i32, Option<String>) {
    if code <= 255 {
        (code as i32, None)
    } else {
        (
            255,
            Some(format!(
                "winsim: exit code {code} ({code:#x}) does not fit the Linux sshd's 8-bit exit status; \
                 the simulated host reports 255 over SSH (use the WinRM face for installer codes)\r\n"
            )),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_whatever_the_split() {
        let bytes = encode_request("reg query HKLM\\SOFTWARE /v X", b"stdin\r\nscript");
        for cut in 0..bytes.len() {
            assert_eq!(decode_request(&bytes[..cut]).unwrap(), None, "cut {cut}");
        }
        let (req, used) = decode_request(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(req.command, "reg query HKLM\\SOFTWARE /v X");
        assert_eq!(req.stdin, b"stdin\r\nscript");
    }

    #[test]
    fn bad_requests_are_refused() {
        assert_eq!(decode_request(b"GET /"), Err(WireError::BadMagic));
        let mut big = MAGIC.to_vec();
        big.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode_request(&big), Err(WireError::TooLong(_))));
        let mut bad = MAGIC.to_vec();
        put_field(&mut bad, &[0xff, 0xfe]);
        put_field(&mut bad, b"");
        assert_eq!(decode_request(&bad), Err(WireError::NotUtf8));
    }

    #[test]
    fn frames_round_trip() {
        let frames = [
            Frame::Stdout(b"out\r\n".to_vec()),
            Frame::Stderr(Vec::new()),
            Frame::Exit(0x8024_0017),
        ];
        let mut bytes = Vec::new();
        for f in &frames {
            bytes.extend(encode_frame(f));
        }
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((f, n)) = decode_frame(&bytes[at..]).unwrap() {
            got.push(f);
            at += n;
        }
        assert_eq!(got, frames);
        assert_eq!(decode_frame(b"Z\0\0\0\0"), Err(WireError::UnknownTag(b'Z')));
        assert_eq!(
            decode_frame(b"X\0\0\0\x01\x07"),
            Err(WireError::BadExitFrame)
        );
    }

    #[test]
    fn host_is_named_by_the_client_address() {
        assert_eq!(
            client_address("127.77.0.5 40022 127.0.0.1 2222"),
            Some("127.77.0.5")
        );
        assert_eq!(client_address("../../etc 1 2 3"), None);
        assert_eq!(client_address(""), None);
    }

    #[test]
    fn large_windows_codes_do_not_become_small_ones() {
        assert_eq!(unix_exit_status(1), (1, None));
        let (code, note) = unix_exit_status(3010);
        assert_eq!(code, 255);
        assert!(note.unwrap().contains("3010"));
    }
}
