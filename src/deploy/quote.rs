//! Quoting for cmd.exe command lines that programs split with `CommandLineToArgvW`.
//!
//! WinRS hands hive's command line to cmd.exe, which reacts to `& | < > ^ ( )` and expands
//! `%VAR%` outside *and* inside quotes, and then the program splits its arguments on whitespace
//! with `"` grouping. There is no escape for `"` or `%` that survives both layers reliably, so a
//! word holding either (or a control character) is refused rather than guessed at: installer
//! paths come from hive's own staging folder and validated file names, so a refusal means a
//! recipe or repository entry an admin must fix.

/// A word that cannot be passed through cmd.exe safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{word}` cannot be passed to cmd.exe: {why}")]
pub struct QuoteError {
    pub word: String,
    pub why: &'static str,
}

/// Characters cmd.exe treats specially outside quotes, plus the argument separators.
const NEEDS_QUOTES: &[char] = &[
    ' ', '\t', '&', '|', '<', '>', '^', '(', ')', ',', ';', '=', '!', '\'', '`',
];

/// Quote one word for a cmd.exe command line: unchanged when it is plain, wrapped in `"` when it
/// holds spaces or cmd metacharacters, refused when it holds `"`, `%`, a control character, or a
/// trailing backslash inside quotes would escape the closing quote.
pub fn quote_arg(word: &str) -> Result<String, QuoteError> {
    let refuse = |why| {
        Err(QuoteError {
            word: word.to_string(),
            why,
        })
    };
    if word.is_empty() {
        return refuse("an empty word would vanish");
    }
    if word.contains('"') {
        return refuse("it contains a double quote");
    }
    if word.contains('%') {
        return refuse("cmd.exe expands % even inside quotes");
    }
    if word.chars().any(char::is_control) {
        return refuse("it contains a control character (a line break ends the command)");
    }
    if !word.contains(NEEDS_QUOTES) {
        return Ok(word.to_string());
    }
    if word.ends_with('\\') {
        // `"C:\dir\"` ends with an escaped quote for CommandLineToArgvW: double the backslash.
        return Ok(format!("\"{word}\\\""));
    }
    Ok(format!("\"{word}\""))
}

/// Quote each word and join them with single spaces.
///
/// WinRS (and Windows' OpenSSH) run the line as `cmd.exe /c LINE`, and cmd.exe strips the first
/// and the last quote of a line that starts with one unless the quoted part is a plain program
/// path (`cmd /?`): `"C:\Program Files (x86)\x.exe" -z` would run `C:\Program`. A line that
/// starts with a quoted word is therefore wrapped in one more pair of quotes, which cmd.exe
/// removes whatever the path holds.
pub fn command_line<S: AsRef<str>>(words: &[S]) -> Result<String, QuoteError> {
    let quoted: Result<Vec<String>, QuoteError> =
        words.iter().map(|w| quote_arg(w.as_ref())).collect();
    let line = quoted?.join(" ");
    if line.starts_with('"') {
        return Ok(format!("\"{line}\""));
    }
    Ok(line)
}

pub use crate::remote::ps_literal;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_stay_as_they_are() {
        assert_eq!(quote_arg("-z").unwrap(), "-z");
        assert_eq!(
            quote_arg(r"C:\Windows\Temp\hive\r1\Q300972.exe").unwrap(),
            r"C:\Windows\Temp\hive\r1\Q300972.exe"
        );
        assert_eq!(
            quote_arg("/packagepath:C:\\x.cab").unwrap(),
            "/packagepath:C:\\x.cab"
        );
    }

    #[test]
    fn spaces_and_metacharacters_are_quoted() {
        assert_eq!(
            quote_arg(r"C:\Program Files\x.exe").unwrap(),
            r#""C:\Program Files\x.exe""#
        );
        assert_eq!(quote_arg("a&b.exe").unwrap(), r#""a&b.exe""#);
        assert_eq!(quote_arg("x|y").unwrap(), r#""x|y""#);
        assert_eq!(quote_arg("a>nul").unwrap(), r#""a>nul""#);
        assert_eq!(quote_arg("(x)").unwrap(), r#""(x)""#);
        assert_eq!(quote_arg("KEY=1").unwrap(), r#""KEY=1""#);
        assert_eq!(quote_arg(r"C:\my dir\").unwrap(), r#""C:\my dir\\""#);
    }

    #[test]
    fn hostile_words_are_refused() {
        for bad in [
            "",
            r#"x" & del C:\*"#,
            "%COMSPEC%",
            "50%",
            "a\r\nshutdown /s",
            "a\nb",
            "nul\u{0}",
        ] {
            assert!(quote_arg(bad).is_err(), "{bad:?} must be refused");
        }
        let e = quote_arg("%PATH%").unwrap_err();
        assert!(e.to_string().contains("%PATH%"), "{e}");
    }

    #[test]
    fn a_command_line_joins_quoted_words() {
        assert_eq!(
            command_line(&[r"C:\T\Q1.exe", "-z", "-q", "-m"]).unwrap(),
            r"C:\T\Q1.exe -z -q -m"
        );
        assert!(command_line(&["ok", "bad\"word"]).is_err());
    }

    #[test]
    fn a_line_starting_with_a_quoted_word_survives_cmd_c() {
        assert_eq!(
            command_line(&[r"C:\Program Files (x86)\A&B\Q1 (x86).exe", "-z"]).unwrap(),
            r#"""C:\Program Files (x86)\A&B\Q1 (x86).exe" -z""#
        );
        assert_eq!(
            command_line(&["certutil", "-hashfile", r"C:\my dir\x.exe"]).unwrap(),
            r#"certutil -hashfile "C:\my dir\x.exe""#
        );
    }

    #[test]
    fn powershell_literals_double_single_quotes() {
        assert_eq!(ps_literal(r"C:\a'b.exe"), r"'C:\a''b.exe'");
    }
}
