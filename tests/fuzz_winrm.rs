//! The WinRM client's sans-IO reply code never panics or hangs on a damaged or hostile reply.
//!
//! Inputs are real: every reply pypsrp recorded from Windows Server (shared/fixtures/
//! winrm-recorded), a real NTLM CHALLENGE from the simulated fleet's NTLM acceptor (its own
//! MS-NLMP server side), and an MS-WSMV encrypted body sealed by that same acceptor. Each is mutated (XML-
//! significant bytes, deletions, duplications, truncation, nesting bombs, hostile values in
//! attributes and element texts, binary length/offset fields) and fed to the parser the client
//! uses for it. Every result must be a value or a typed error with a message; a panic or a case
//! that never ends fails the test.
//!
//! Budgets: see tests/fuzz_support (`HIVE_FUZZ_SECONDS=600 cargo test -p hive --test fuzz_winrm
//! -- --nocapture --test-threads 1`).

mod fuzz_support;

use fuzz_support::{FieldAt, Grammar, Outcome, apply, mutations};
use hive_winrm::framing::{self, Sealing};
use hive_winrm::ns;
use hive_winrm::ntlm::{self, NtlmCredentials, NtlmSealer, Role};
use hive_winrm::response::{self, ResponseError};

struct Exchange {
    file: String,
    action: String,
    message_id: String,
    response: String,
}

fn recorded() -> Vec<Exchange> {
    let dir = fuzz_support::workspace().join("../shared/fixtures/winrm-recorded");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "recordings missing in {}", dir.display());
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        for m in doc["messages"].as_sequence().unwrap() {
            let request = hive_winrm::xml::parse(m["request"].as_str().unwrap()).unwrap();
            let header = request.child(ns::SOAP, "Header").unwrap();
            let text = |local: &str| {
                header
                    .child(ns::ADDRESSING, local)
                    .map(|e| e.text.trim().to_string())
                    .unwrap()
            };
            out.push(Exchange {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                action: text("Action"),
                message_id: text("MessageID"),
                response: m["response"].as_str().unwrap().to_string(),
            });
        }
    }
    out
}

const SOAP: Grammar = Grammar {
    bytes: &[
        b'<', b'>', b'&', b'"', b'\'', b'/', b'=', b':', b'0', b'9', b' ', b'\n', b';', b'#', b'x',
        b'A', b'+', 0xC3, 0x80, 0,
    ],
    tokens: &[
        "<a>",
        "<s:Body>",
        "<rsp:Stream Name=\"stdout\">",
        "<!--",
        "<![CDATA[",
        "]]>",
        "&#0;",
        "&#xD800;",
        "&unknown;",
        "<p:x>",
        "xmlns:s=\"\" ",
        "<?xml version=\"1.0\"?>",
        "<!DOCTYPE x [<!ENTITY a \"aaaaaaaa\">]>",
    ],
    values: &[
        "",
        "0",
        "-1",
        "0x",
        "0xFFFFFFFF",
        "-2147483649",
        "4294967296",
        "99999999999999999999999",
        "True",
        "====",
        "A",
        "AAA",
        "\u{0}",
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done",
        "uuid:00000000-0000-0000-0000-000000000000",
        "s:Sender",
        "&amp;&lt;",
        "é",
    ],
    slots: &[(b"=\"", b'"'), (b">", b'<')],
    nests: &[],
};

/// Parse a reply with the function the client uses for its action; true when it parsed.
fn parse_like_the_client(ex: &Exchange, text: &str) -> Outcome {
    let mid = &ex.message_id;
    let result: Result<(), ResponseError> = match ex.action.as_str() {
        ns::ACTION_CREATE => response::parse_create(text, mid).map(|c| {
            assert!(!c.shell_id.is_empty());
        }),
        ns::ACTION_COMMAND => response::parse_command(text, mid).map(|id| {
            assert!(!id.is_empty());
        }),
        ns::ACTION_RECEIVE => response::parse_receive(text, mid).map(|out| {
            for c in &out.chunks {
                assert!(!c.name.is_empty());
            }
            let _ = out.stream("stdout");
            let _ = out.is_done();
        }),
        ns::ACTION_GET => response::parse_config(text, mid).map(|c| {
            let _ = c.max_envelope_size_kb;
        }),
        _ => response::parse_empty(text, mid),
    };
    // What the client does with a non-200 reply.
    if let Some(f) = response::parse_fault(text) {
        let _ = (f.kind(), f.to_string());
    }
    match result {
        Ok(()) => Outcome::Accepted,
        Err(e) => {
            let msg = e.to_string();
            assert!(
                !msg.trim().is_empty(),
                "{}: an error without a message",
                ex.file
            );
            if let ResponseError::Fault(f) = &e {
                let _ = f.kind();
            }
            Outcome::Refused
        }
    }
}

#[test]
fn soap_replies_survive_mutations() {
    let exchanges = recorded();
    let n = exchanges.len();
    let tally = fuzz_support::run(
        "winrm SOAP replies",
        1200,
        (0..n, mutations(&SOAP, 0)),
        |(i, muts)| {
            let ex = &exchanges[i];
            let bytes = apply(&SOAP, ex.response.as_bytes(), &[], &muts);
            // The client reads the HTTP body as UTF-8, lossily.
            parse_like_the_client(ex, &String::from_utf8_lossy(&bytes))
        },
    );
    assert!(
        tally.accepted > 0,
        "no mutated reply parsed at all: the mutations are too blunt"
    );
}

/// Every recorded reply parses as recorded (the seeds are good inputs, so the mutations start
/// from documents that exercise the parsers' deep paths).
#[test]
fn the_seeds_parse() {
    for ex in recorded() {
        let _ = parse_like_the_client(&ex, &ex.response);
    }
}

// ---- NTLM and MS-WSMV encryption ----------------------------------------------------------------

const USER: &str = "Administrator";
const PASSWORD: &str = "Fuzz-Passw0rd";

fn nonces() -> ntlm::AuthenticateNonces {
    ntlm::AuthenticateNonces {
        client_challenge: [0x11; 8],
        exported_session_key: [0x5a; 16],
        timestamp: [0; 8],
    }
}

/// A real CHALLENGE message from the simulated fleet's NTLM acceptor, answering our NEGOTIATE.
fn real_challenge() -> (winsim::server::ntlm::NtlmAcceptor, Vec<u8>) {
    let mut acceptor = winsim::server::ntlm::NtlmAcceptor::new(USER, PASSWORD).unwrap();
    match acceptor.step(&ntlm::negotiate_message()).unwrap() {
        winsim::server::ntlm::Step::Challenge(c) => (acceptor, c),
        other => panic!("no challenge: {other:?}"),
    }
}

const NTLM: Grammar = Grammar {
    bytes: &[0, 1, 2, 0x7f, 0x80, 0xff],
    tokens: &["\u{0}\u{0}\u{0}\u{0}", "\u{7}\u{0}\u{8}\u{0}"],
    values: &[],
    slots: &[],
    nests: &[],
};

/// The header fields of a CHALLENGE (type, lengths, offsets, flags) and its AV pair headers.
fn challenge_fields(msg: &[u8]) -> Vec<FieldAt> {
    let mut f = vec![
        FieldAt {
            offset: 8,
            width: 4,
        },
        FieldAt {
            offset: 12,
            width: 2,
        },
        FieldAt {
            offset: 16,
            width: 4,
        },
        FieldAt {
            offset: 20,
            width: 4,
        },
        FieldAt {
            offset: 40,
            width: 2,
        },
        FieldAt {
            offset: 42,
            width: 2,
        },
        FieldAt {
            offset: 44,
            width: 4,
        },
    ];
    let off = u32::from_le_bytes(msg[44..48].try_into().unwrap()) as usize;
    let len = u16::from_le_bytes(msg[40..42].try_into().unwrap()) as usize;
    let mut i = off;
    while i + 4 <= off + len && i + 4 <= msg.len() {
        f.push(FieldAt {
            offset: i,
            width: 2,
        });
        f.push(FieldAt {
            offset: i + 2,
            width: 2,
        });
        let l = u16::from_le_bytes([msg[i + 2], msg[i + 3]]) as usize;
        i += 4 + l;
    }
    f
}

/// Read a field of an AUTHENTICATE message back; it must lie inside the message.
fn auth_field(m: &[u8], at: usize) -> &[u8] {
    let len = u16::from_le_bytes([m[at], m[at + 1]]) as usize;
    let off = u32::from_le_bytes(m[at + 4..at + 8].try_into().unwrap()) as usize;
    m.get(off..off + len)
        .unwrap_or_else(|| panic!("AUTHENTICATE field at {at} points outside the message"))
}

#[test]
fn ntlm_challenges_survive_mutations() {
    let (_, chal) = real_challenge();
    let fields = challenge_fields(&chal);
    let creds = NtlmCredentials::new(USER, PASSWORD);
    let negotiate = ntlm::negotiate_message();
    fuzz_support::run(
        "winrm NTLM challenges",
        800,
        mutations(&NTLM, fields.len()),
        |muts| {
            let msg = apply(&NTLM, &chal, &fields, &muts);
            let Ok(c) = ntlm::parse_challenge(&msg) else {
                return Outcome::Refused;
            };
            match ntlm::authenticate(&creds, &negotiate, &c, [0; 16], &nonces()) {
                Ok(a) => {
                    // Every length/offset pair we wrote must describe the bytes we sent.
                    let m = &a.message;
                    for at in [12, 20, 28, 36, 44, 52] {
                        let _ = auth_field(m, at);
                    }
                    Outcome::Accepted
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    Outcome::Refused
                }
            }
        },
    );
}

/// The acceptor's sealing as a [`Sealing`], so replies are framed by the code under test but
/// sealed by an independent NTLM implementation.
struct ServerSeal(winsim::server::ntlm::NtlmAcceptor);

impl Sealing for ServerSeal {
    fn seal_message(&mut self, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), framing::FramingError> {
        Ok(self.0.seal(plain).unwrap())
    }
    fn unseal_message(&mut self, _: &[u8], _: &[u8]) -> Result<Vec<u8>, framing::FramingError> {
        unreachable!("the server side only seals here")
    }
}

const FRAMING: Grammar = Grammar {
    bytes: &[b'-', b'\r', b'\n', b'=', b';', b'0', b'9', 0, 0xff],
    tokens: &[
        "--Encrypted Boundary\r\n",
        "--Encrypted Boundary--\r\n",
        "\tContent-Type: application/octet-stream\r\n",
        "Length=",
        "99999999999999999999",
    ],
    values: &[
        "",
        "0",
        "1",
        "-1",
        "18446744073709551616",
        "4294967295",
        "x",
    ],
    slots: &[(b"Length=", b'\r')],
    nests: &[],
};

#[test]
fn encrypted_bodies_survive_mutations() {
    let (mut acceptor, chal) = real_challenge();
    let creds = NtlmCredentials::new(USER, PASSWORD);
    let c = ntlm::parse_challenge(&chal).unwrap();
    let auth =
        ntlm::authenticate(&creds, &ntlm::negotiate_message(), &c, [0; 16], &nonces()).unwrap();
    assert_eq!(
        acceptor.step(&auth.message).unwrap(),
        winsim::server::ntlm::Step::Authenticated
    );
    let exchanges = recorded();
    let ex = exchanges
        .iter()
        .find(|e| e.action == ns::ACTION_RECEIVE && e.response.contains("stdout"))
        .unwrap();
    let mut server = ServerSeal(acceptor);
    let body = framing::encrypt_body(&mut server, ex.response.as_bytes()).unwrap();
    // The signature length field right after the octet-stream header.
    let hdr = b"\tContent-Type: application/octet-stream\r\n";
    let at = body.windows(hdr.len()).rposition(|w| w == hdr).unwrap() + hdr.len();
    let fields = [
        FieldAt {
            offset: at,
            width: 4,
        },
        FieldAt {
            offset: at + 4,
            width: 4,
        },
    ];
    // Unmutated, it opens with the client's keys.
    let mut client = NtlmSealer::new(&nonces().exported_session_key, Role::Client);
    assert_eq!(
        framing::decrypt_body(&mut client, &body).unwrap(),
        ex.response.as_bytes()
    );
    fuzz_support::run(
        "winrm encrypted bodies",
        500,
        mutations(&FRAMING, fields.len()),
        |muts| {
            let b = apply(&FRAMING, &body, &fields, &muts);
            let mut client = NtlmSealer::new(&nonces().exported_session_key, Role::Client);
            match framing::decrypt_body(&mut client, &b) {
                Ok(plain) => {
                    parse_like_the_client(ex, &String::from_utf8_lossy(&plain));
                    Outcome::Accepted
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    Outcome::Refused
                }
            }
        },
    );
}

// ---- PowerShell error records ---------------------------------------------------------------------

const CLIXML_SAMPLE: &str = "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><Obj S=\"progress\" RefId=\"0\"><TN RefId=\"0\"><T>System.Management.Automation.PSCustomObject</T><T>System.Object</T></TN><MS><I64 N=\"SourceId\">1</I64><PR N=\"Record\"><AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj><S S=\"Error\">Get-Item : Cannot find path 'C:\\nope' because it does not exist._x000D__x000A_</S><S S=\"Error\">At line:1 char:1_x000D__x000A_</S><S S=\"Warning\">_xD83D__xDE00_ _xD83D_ _x00_ _x</S></Objs>";

const CLIXML: Grammar = Grammar {
    bytes: &[b'<', b'>', b'_', b'x', b'0', b'D', b'"', b'&', 0xC3],
    tokens: &[
        "#< CLIXML",
        "_xD800_",
        "_xDFFF_",
        "_x000",
        "<S S=\"Error\">",
        "\r\n",
    ],
    values: &[
        "",
        "Error",
        "Warning",
        "_xD83D_",
        "_x_",
        "_xZZZZ_",
        "é_x0041_",
    ],
    slots: &[(b"=\"", b'"'), (b">", b'<')],
    nests: &[],
};

#[test]
fn powershell_error_records_survive_mutations() {
    fuzz_support::run("winrm CLIXML stderr", 400, mutations(&CLIXML, 0), |muts| {
        let b = apply(&CLIXML, CLIXML_SAMPLE.as_bytes(), &[], &muts);
        let text = String::from_utf8_lossy(&b);
        let shown = hive_winrm::clixml::decode_stderr(&text);
        // stderr that is not CLIXML is what the admin must see, byte for byte.
        if !text.contains("#< CLIXML") {
            assert_eq!(shown, text, "plain stderr was altered");
        }
        // Decoding only removes (markup, progress records, escapes): a hostile stream cannot
        // make the text the journal and report keep grow beyond what the host sent.
        assert!(
            shown.len() <= text.len(),
            "decoded stderr grew from {} to {} bytes",
            text.len(),
            shown.len()
        );
        Outcome::Accepted
    });
}
